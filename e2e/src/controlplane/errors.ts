/** Stable error codes of the control-plane helper. */
export type ControlPlaneErrorCode =
  | "TETHER_ERR_CONTROL_PLANE_OPTIONS"
  | "TETHER_ERR_CONTROL_PLANE_BINARIES"
  | "TETHER_ERR_CONTROL_PLANE_CERTS"
  | "TETHER_ERR_CONTROL_PLANE_START"
  | "TETHER_ERR_CONTROL_PLANE_TIMEOUT"
  | "TETHER_ERR_CONTROL_PLANE_KUBECTL";

/** Every failure of the control-plane helper; `message` carries the component log tails when a start fails. */
export class ControlPlaneError extends Error {
  readonly code: ControlPlaneErrorCode;

  constructor(code: ControlPlaneErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ControlPlaneError";
    this.code = code;
  }
}
