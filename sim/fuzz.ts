/**
 * Fault-campaign fuzzing: fast-check generates campaigns, runs each against the invariants of
 * {@link runCampaign}, shrinks a failure to a short schedule, and reports how to replay it.
 *
 * @module
 */
import {
  CAMPAIGN,
  type Campaign,
  campaignArbitrary,
  type CampaignResult,
  RING_CAMPAIGN,
  runCampaign,
} from "./campaign.ts";
import { searchScenarios } from "./scenario.ts";

/** Options of {@link fuzzCampaigns}. */
export interface FuzzOptions {
  readonly runs: number;
  /** fast-check's seed: the same seed generates the same campaigns. */
  readonly seed: number;
  readonly nodesMin?: number;
  readonly nodesMax?: number;
  readonly durationMs?: number;
  /** Run every campaign twice and require the same trace hash (a determinism self-check). */
  readonly checkDeterminism?: boolean;
  /** Called after each campaign run (shrinking runs included). */
  readonly onProgress?: (done: number, total: number) => void;
  /** The nodes' membership (default the mesh). */
  readonly membership?: "mesh" | "ring";
}

/** What a fuzzing session found. */
export interface FuzzReport {
  readonly runs: number;
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  /** The shrunk failing campaign, its violations and fast-check's replay coordinates. */
  readonly failure?: {
    readonly campaign: Campaign;
    readonly violations: readonly string[];
    readonly seed: number;
    readonly path: string;
    readonly shrinks: number;
  };
}

/** Runs one campaign (twice if asked) and returns its violations, determinism included. */
export function checkOnce(
  campaign: Campaign,
  checkDeterminism: boolean,
  membership: "mesh" | "ring" = "mesh",
): CampaignResult {
  const result = runCampaign(campaign, { membership });
  if (!checkDeterminism || result.violations.length > 0) return result;
  const again = runCampaign(campaign, { membership });
  if (again.traceHash !== result.traceHash) {
    return {
      ...result,
      violations: [`nondeterminism: trace hash ${result.traceHash} then ${again.traceHash}`],
    };
  }
  return result;
}

/**
 * Generates and runs `runs` campaigns; stops at the first failure and shrinks it. The search is
 * the public {@link searchScenarios} over the campaign's definition.
 *
 * @example
 * ```ts
 * import { fuzzCampaigns } from "./fuzz.ts";
 * const report = fuzzCampaigns({ runs: 2, seed: 1, nodesMax: 4 });
 * if (!(report.runs === 2 && report.failure === undefined)) throw new Error("example failed");
 * ```
 */
export function fuzzCampaigns(options: FuzzOptions): FuzzReport {
  const report = searchScenarios(
    options.membership === "ring" ? RING_CAMPAIGN : CAMPAIGN,
    campaignArbitrary({
      nodesMin: options.nodesMin,
      nodesMax: options.nodesMax,
      durationMs: options.durationMs,
    }),
    {
      numRuns: options.runs,
      seed: options.seed,
      checkDeterminism: options.checkDeterminism,
      onProgress: options.onProgress,
    },
  );
  const { failure } = report;
  return {
    runs: report.runs,
    sent: report.sent,
    delivered: report.delivered,
    reported: report.reported,
    ...(failure === undefined ? {} : {
      failure: {
        campaign: failure.scenario,
        violations: failure.violations,
        seed: failure.seed,
        path: failure.path,
        shrinks: failure.shrinks,
      },
    }),
  };
}
