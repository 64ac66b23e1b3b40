// What a benchmark scenario is, and how its figures become a markdown table.
// run.ts runs a list of scenarios; each returns rows for the table and a JSON section for
// bench/results/latest.json (and may add files, such as an SVG, beside it).

export interface ScenarioContext {
  /** Small sizes for CI (the whole run in under a minute). */
  readonly quick: boolean;
  /** Progress lines; they go to stderr, never into the table. */
  readonly log: (line: string) => void;
}

export interface ScenarioResult {
  /** The table's heading. */
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Lines printed under the table. */
  readonly notes?: readonly string[];
  /** This scenario's section of latest.json: raw figures (ms, counts), not formatted text. */
  readonly json: unknown;
  /** More files to write beside latest.json, by file name (e.g. "engine-cdf.svg"). */
  readonly files?: Readonly<Record<string, string>>;
}

export interface Scenario {
  /** A short identifier: the key in latest.json and the value of `--only`. */
  readonly name: string;
  run(context: ScenarioContext): Promise<ScenarioResult>;
}

/** A GitHub-flavoured markdown table; `|` in cells is escaped. */
export function markdownTable(columns: readonly string[], rows: readonly (readonly string[])[]): string {
  const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(" | ")} |`;
  return [line(columns), line(columns.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The markdown section of one scenario: heading, table, notes. */
export function markdownSection(result: ScenarioResult): string {
  const out = [`## ${result.title}`, "", markdownTable(result.columns, result.rows)];
  if (result.notes?.length) out.push("", ...result.notes);
  return out.join("\n") + "\n";
}
