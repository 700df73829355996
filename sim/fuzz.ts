/**
 * Fault-campaign fuzzing: fast-check generates campaigns, runs each against the invariants of
 * {@link runCampaign}, shrinks a failure to a short schedule, and reports how to replay it.
 *
 * @module
 */
import fc from "fast-check";
import { type Campaign, campaignArbitrary, type CampaignResult, runCampaign } from "./campaign.ts";

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
export function checkOnce(campaign: Campaign, checkDeterminism: boolean): CampaignResult {
  const result = runCampaign(campaign);
  if (!checkDeterminism || result.violations.length > 0) return result;
  const again = runCampaign(campaign);
  if (again.traceHash !== result.traceHash) {
    return {
      ...result,
      violations: [`nondeterminism: trace hash ${result.traceHash} then ${again.traceHash}`],
    };
  }
  return result;
}

/**
 * Generates and runs `runs` campaigns; stops at the first failure and shrinks it.
 *
 * @example
 * ```ts
 * import { fuzzCampaigns } from "./fuzz.ts";
 * const report = fuzzCampaigns({ runs: 2, seed: 1, nodesMax: 4 });
 * console.assert(report.runs === 2 && report.failure === undefined);
 * ```
 */
export function fuzzCampaigns(options: FuzzOptions): FuzzReport {
  let sent = 0;
  let delivered = 0;
  let reported = 0;
  let done = 0;
  const failures = new Map<Campaign, readonly string[]>();
  const property = fc.property(
    campaignArbitrary({
      nodesMin: options.nodesMin,
      nodesMax: options.nodesMax,
      durationMs: options.durationMs,
    }),
    (campaign) => {
      const result = checkOnce(campaign, options.checkDeterminism ?? false);
      options.onProgress?.(++done, options.runs);
      if (result.violations.length === 0) {
        sent += result.sent;
        delivered += result.delivered;
        reported += result.reported;
        return true;
      }
      failures.set(campaign, result.violations);
      return false;
    },
  );
  const details = fc.check(property, { seed: options.seed, numRuns: options.runs });
  if (!details.failed || details.counterexample === null) {
    return { runs: details.numRuns, sent, delivered, reported };
  }
  const [campaign] = details.counterexample;
  return {
    runs: details.numRuns,
    sent,
    delivered,
    reported,
    failure: {
      campaign,
      violations: failures.get(campaign) ?? checkOnce(campaign, true).violations,
      seed: details.seed,
      path: details.counterexamplePath ?? "",
      shrinks: details.numShrinks,
    },
  };
}
