/**
 * Every link in README.md and docs/*.md resolves: in the repository, and on
 * the JSR package page, whose files are what `deno publish --dry-run` lists.
 * A link to a heading (`#...`) must name a heading of its target.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const DOCS = [
  "README.md",
  ...[...Deno.readDirSync(new URL("docs/", root))]
    .filter((entry) => entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`),
];

/** GitHub's (and JSR's) anchor for a heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, "").replaceAll(" ", "-");
}

function headings(markdown: string): Set<string> {
  const outside = markdown.replace(/```[\s\S]*?```/g, "");
  return new Set([...outside.matchAll(/^#+ (.+)$/gm)].map((match) => slug(match[1])));
}

/** Relative links of a Markdown file, code blocks left out: [target, line]. */
function links(markdown: string): string[] {
  const outside = markdown.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...outside.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1])
    .filter((target) => !/^[a-z]+:/.test(target));
}

async function publishedFiles(): Promise<Set<string>> {
  const { stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
  }).output();
  const listing = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  const prefix = new URL(".", root).href;
  return new Set(
    [...listing.matchAll(/(file:\/\/\S+) \(/g)].map((match) => match[1].slice(prefix.length)),
  );
}

Deno.test("every link in README.md and docs/ resolves in the repository and in the published package", async () => {
  const published = await publishedFiles();
  assert.ok(published.has("README.md"), "the dry run lists the package's files");
  const broken: string[] = [];
  for (const doc of DOCS) {
    const markdown = Deno.readTextFileSync(new URL(doc, root));
    for (const link of links(markdown)) {
      const [path, anchor] = link.split("#");
      const target = path === ""
        ? doc
        : new URL(path, new URL(doc, root)).href.slice(root.href.length);
      let exists = true;
      try {
        Deno.statSync(new URL(target, root));
      } catch {
        exists = false;
      }
      if (!exists) broken.push(`${doc}: ${link} (no such file)`);
      else if (!published.has(target)) broken.push(`${doc}: ${link} (not in the package)`);
      else if (anchor && target.endsWith(".md")) {
        const headingsOfTarget = headings(Deno.readTextFileSync(new URL(target, root)));
        if (!headingsOfTarget.has(anchor)) broken.push(`${doc}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("deno doc --lint in deno task check covers every published entry point, and nothing else", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root)));
  const exported = Object.values<string>(config.exports).map((path) => path.replace(/^\.\//, ""));
  for (const task of ["check", "doc"]) {
    const linted = /deno doc --lint ([^&]+)/.exec(config.tasks[task])![1].trim().split(/\s+/);
    assert.deepEqual([...linted].sort(), [...exported].sort(), `task ${task}`);
  }
});

Deno.test("deno publish --dry-run is clean: no warnings", async () => {
  const { stdout, stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const listing = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.ok(success, listing);
  assert.doesNotMatch(listing, /warning/i, listing);
});

Deno.test("README's quick start is examples/quick_start.ts as written", () => {
  const readme = Deno.readTextFileSync(new URL("README.md", root));
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```ts\n([\s\S]*?)```/.exec(section)![1];
  const file = Deno.readTextFileSync(new URL("examples/quick_start.ts", root))
    .replace(/^\/\*\*[\s\S]*?\*\/\n\n/, "");
  assert.equal(block, file);
});
