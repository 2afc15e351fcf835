/**
 * Regenerates ads.txt, trackers.txt and malware.txt from the filter lists that the npm
 * package `@adguard/dnr-rulesets` ships (each ruleset JSON carries the raw upstream list in
 * `metadata.rawFilterList`).
 *
 * Usage (from the repository root):
 *   npm pack @adguard/dnr-rulesets && mkdir -p /tmp/dnr && tar xzf adguard-dnr-rulesets-*.tgz -C /tmp/dnr
 *   deno run -A src/filter/lists/update.ts /tmp/dnr/package
 *
 * Only rules that a proxy can enforce on a host name (and, for malware, on a host plus path)
 * are kept; cosmetic rules, exceptions and rules narrowed by options a proxy cannot see
 * (`$domain=`, `$popup`, resource types) are dropped.
 */
const pkgDir = Deno.args[0];
if (!pkgDir) throw new Error("usage: update.ts <extracted @adguard/dnr-rulesets package dir>");
const pkg = JSON.parse(await Deno.readTextFile(`${pkgDir}/package.json`));

function raw(id: number): string {
  const rules = JSON.parse(
    Deno.readTextFileSync(`${pkgDir}/dist/filters/declarative/ruleset_${id}/ruleset_${id}.json`),
  );
  return String(rules[0].metadata.rawFilterList).replaceAll("\r", "");
}

function meta(text: string, key: string): string {
  return text.match(new RegExp(`^! ${key}: (.*)$`, "m"))?.[1] ?? "unknown";
}

const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;
/**
 * Options under which a `||host^` rule still blocks the whole host at a proxy: party and
 * resource-type restrictions (a proxy sees neither reliably, and ad/tracker hosts serve
 * little else). Rules with `$domain=`, `$popup`, `$badfilter`, redirects or negations are
 * narrower than a host verdict and are left out.
 */
const BLOCKING_OPTIONS = new Set([
  "third-party", "3p", "all", "document", "doc", "important", "script", "image", "subdocument",
  "xmlhttprequest", "ping", "media", "object", "stylesheet", "font", "websocket", "other",
]);

/** Domain-only `||host^` rules whose options do not narrow them to a context. */
function domains(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = line.match(/^\|\|([^/^$*|]+)\^(?:\$(.*))?$/);
    if (!m || !HOST.test(m[1])) continue;
    if (m[2] && !m[2].split(",").every((o) => BLOCKING_OPTIONS.has(o))) continue;
    out.add(m[1]);
  }
  return [...out].sort();
}

/** `||host^` and `||host/path^` rules of the URLhaus-based list, `$all` stripped. */
function malwareRules(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = line.match(/^\|\|([^$]+?)(?:\$all)?$/);
    if (!m) continue;
    const host = m[1].split(/[/^:]/, 1)[0];
    if (!HOST.test(host)) continue;
    out.add(`||${m[1]}`);
  }
  return [...out].sort();
}

interface Out {
  file: string;
  id: number;
  lines: string[];
  format: string;
  upstreamLicence: string;
}

const ads = raw(2), mobileAds = raw(11), trackers = raw(3), malware = raw(208);
const outs: Out[] = [
  {
    file: "ads.txt",
    id: 2,
    lines: [...new Set([...domains(ads), ...domains(mobileAds)])].sort(),
    format: "one domain per line (subdomains match too)",
    upstreamLicence: "GPL-3.0 (AdGuard filters; EasyList part dual GPL-3.0 / CC BY-SA 3.0)",
  },
  {
    file: "trackers.txt",
    id: 3,
    lines: domains(trackers),
    format: "one domain per line (subdomains match too)",
    upstreamLicence: "GPL-3.0 (AdGuard filters)",
  },
  {
    file: "malware.txt",
    id: 208,
    lines: malwareRules(malware),
    format: "Adblock network rules: ||host^ (whole host) or ||host/path (URL prefix)",
    upstreamLicence: "CC0 data from URLhaus (abuse.ch); list by malware-filter, MIT/CC0",
  },
];
const texts: Record<number, string> = { 2: ads, 3: trackers, 208: malware };

const dir = new URL(".", import.meta.url);
for (const o of outs) {
  const text = texts[o.id];
  const header = [
    `# ${meta(text, "Title")} (${o.format})`,
    `# source package: npm ${pkg.name}@${pkg.version} (licence ${pkg.license}), ruleset_${o.id}${o.id === 2 ? " + ruleset_11 (AdGuard Mobile Ads filter)" : ""}`,
    `# upstream: ${meta(text, "Title")} version ${meta(text, "Version")}, updated ${
      meta(text, "TimeUpdated")
    }, ${meta(text, "Homepage")}`,
    `# upstream licence: ${o.upstreamLicence}`,
    `# entries: ${o.lines.length}`,
    `# regenerate: deno run -A src/filter/lists/update.ts <package dir>`,
  ];
  await Deno.writeTextFile(new URL(o.file, dir), header.concat(o.lines).join("\n") + "\n");
  console.log(o.file, o.lines.length);
}
