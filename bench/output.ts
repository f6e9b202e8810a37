/**
 * What a run prints and writes: Markdown tables lined up for the terminal,
 * and the documents in `bench/`, laid out as `deno fmt` would so that
 * `deno task check` accepts them as written.
 *
 * @module
 */

/** Markdown tables with their columns lined up (by `deno fmt`), for the terminal. */
export async function aligned(markdown: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", "--ext=md", "--line-width=1000", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(markdown));
  await writer.close();
  const { success, stdout } = await child.output();
  return success ? new TextDecoder().decode(stdout) : markdown;
}

/** Lays the files out as `deno fmt` would, so `deno task check` accepts them as written. */
async function formatFiles(files: readonly URL[]): Promise<void> {
  const config = new URL("../deno.json", import.meta.url);
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", `--config=${config.pathname}`, ...files.map((file) => file.pathname)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) console.error(`deno fmt failed: ${new TextDecoder().decode(stderr)}`);
}

/**
 * Writes each document (file name in `bench/`, then its text) and lays it out,
 * the HTML page excepted (its inlined scripts are not for a formatter, and
 * `fmt.exclude` leaves it out of the check); returns their paths for the
 * closing line ("bench/RESULTS.md, bench/results.svg and ...").
 */
export async function writeDocuments(documents: Readonly<Record<string, string>>): Promise<string> {
  const files: URL[] = [];
  for (const [name, text] of Object.entries(documents)) {
    const file = new URL(`./${name}`, import.meta.url);
    await Deno.writeTextFile(file, text);
    if (!name.endsWith(".html")) files.push(file);
  }
  await formatFiles(files);
  const paths = Object.keys(documents).map((name) => `bench/${name}`);
  return paths.length > 1 ? `${paths.slice(0, -1).join(", ")} and ${paths.at(-1)}` : paths[0];
}
