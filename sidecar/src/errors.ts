// Errors carry a stable code so callers and logs can tell failures apart without parsing messages.
export type TetherErrorCode =
  | "TETHER_ERR_CONFIG_READ"
  | "TETHER_ERR_CONFIG_YAML"
  | "TETHER_ERR_CONFIG_INVALID"
  | "TETHER_ERR_CONFIG_EMPTY"
  | "TETHER_ERR_CLI_USAGE"
  | "TETHER_ERR_LISTEN"
  | "TETHER_ERR_XDS_UNAVAILABLE"
  | "TETHER_ERR_XDS_REJECTED"
  | "TETHER_ERR_TLS_MATERIAL"
  | "TETHER_ERR_ACCESS_LOG";

export class TetherError extends Error {
  readonly code: TetherErrorCode;
  /** One line per problem, for errors that collect several (config validation). */
  readonly problems: readonly string[];

  constructor(code: TetherErrorCode, message: string, problems: readonly string[] = []) {
    super(message);
    this.name = "TetherError";
    this.code = code;
    this.problems = problems;
  }
}
