/**
 * The manager at another git revision, for the runs that compare revisions
 * (`--segmentation`, `--compare`): a detached `git worktree` of it in a
 * temporary directory, removed when disposed. Its `mod.ts` is loaded by a
 * server process run with this tree's `deno.json`, whose import map resolves
 * an older `mod.ts`'s imports too.
 *
 * @module
 */

const decoder = new TextDecoder();

/** The repository's root: the folder above `bench/`. */
export const ROOT: string = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Runs git in `cwd`; its output without the trailing newline, or an error with its stderr. */
export async function git(args: readonly string[], cwd: string = ROOT): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("git", {
    args: [...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`git ${args.join(" ")}: ${decoder.decode(stderr).trim()}`);
  return decoder.decode(stdout).trim();
}

/** Which managers a run measures. */
export interface Revisions {
  /** The manager to measure: a git revision, or `null` for the working tree. */
  readonly revision: string | null;
  /** A manager to compare with (the "before"): a git revision, or `null` for none. */
  readonly baseline: string | null;
}

/** A manager's source: a folder holding `mod.ts`, and the commit it is. */
export interface Checkout {
  readonly path: string;
  readonly commit: string;
  /** The working tree only: whether its `mod.ts` or `lib/` differ from the commit. */
  readonly uncommitted: boolean;
}

/** The working tree, as it is. */
export async function workingTree(): Promise<Checkout> {
  return {
    path: ROOT,
    commit: await git(["rev-parse", "HEAD"]),
    uncommitted: await git(["status", "--porcelain", "--", "mod.ts", "lib/"]) !== "",
  };
}

/**
 * The manager to measure, its source owned by `stack`: the working tree for
 * `null`, else a temporary worktree of `revision` (removed when `stack` is
 * disposed), whose path is logged.
 */
export async function checkout(
  stack: AsyncDisposableStack,
  revision: string | null,
  log: (message: string) => void,
): Promise<Checkout> {
  if (revision === null) return await workingTree();
  const tree = stack.use(await worktree(revision));
  log(`${revision} checked out in ${tree.path}`);
  return tree;
}

/**
 * A detached worktree of `revision` in a new directory under the system's
 * temporary directory (made by git, not by the bench), removed when disposed.
 */
export async function worktree(revision: string): Promise<Checkout & AsyncDisposable> {
  const commit = await git(["rev-parse", "--verify", `${revision}^{commit}`]);
  const temporary = Deno.env.get("TMPDIR") ?? "/tmp";
  const path = `${temporary}/iot-manager-bench-${commit.slice(0, 7)}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  await git(["worktree", "add", "--detach", "--quiet", path, commit]);
  return {
    path,
    commit,
    uncommitted: false,
    [Symbol.asyncDispose]: async () => {
      await git(["worktree", "remove", "--force", path]);
    },
  };
}
