// Envoy's %RESPONSE_FLAGS%: short names, written in the order of Envoy's flag bits, joined by ","
// ("-" when none). Only the flags Tether can set are listed.
export const RESPONSE_FLAGS = {
  UH: 1 << 1, // no healthy upstream
  UT: 1 << 2, // upstream request timeout
  UF: 1 << 5, // upstream connection failure
  UC: 1 << 6, // upstream connection termination
  UO: 1 << 7, // upstream overflow (circuit breaker)
  NR: 1 << 8, // no route
  DC: 1 << 14, // downstream connection termination
  URX: 1 << 15, // retry limit / max connect attempts reached
  SI: 1 << 16, // stream idle timeout
  DPE: 1 << 18, // downstream protocol error
  NC: 1 << 24, // no cluster found
} as const;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;

const ORDERED = (Object.entries(RESPONSE_FLAGS) as [ResponseFlag, number][]).sort((a, b) => a[1] - b[1]);

/** The flags as Envoy writes them, or undefined when there are none (rendered "-"). */
export function responseFlagsString(bits: number): string | undefined {
  if (bits === 0) return undefined;
  let out = "";
  for (const [name, bit] of ORDERED) if ((bits & bit) !== 0) out = out === "" ? name : `${out},${name}`;
  return out;
}
