/** The DeviceStore contract (tests/_store_contract.ts) against MemoryStore. */
import { MemoryStore } from "../mod.ts";
import { storeContract } from "./_store_contract.ts";

storeContract("MemoryStore", () => Promise.resolve(new MemoryStore()));
