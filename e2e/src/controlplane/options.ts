import { resolve } from "node:path";
import { DEFAULT_CONTROLLERS } from "./components.ts";
import { ControlPlaneError } from "./errors.ts";

/** Options of startControlPlane(); all optional. */
export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver, kubectl, kube-controller-manager; default: ensureBinaries(). */
  readonly binDir?: string;
  /** Also run kube-controller-manager: true for DEFAULT_CONTROLLERS, or the controller names. Default false. */
  readonly controllers?: boolean | readonly string[];
  /** Working directory, created (must not exist or be empty) and removed by stop(); default a temp dir. */
  readonly dir?: string;
  /** Deadline for the whole start, in ms; default 120 000. */
  readonly startTimeoutMs?: number;
  /** Extra kube-apiserver flags (`--name=value`), e.g. feature gates. */
  readonly apiServerArgs?: readonly string[];
}

const DEFAULT_START_TIMEOUT_MS = 120_000;

/** Options checked and filled with defaults. */
export interface Settings {
  readonly controllers: readonly string[];
  readonly dir: string | undefined;
  readonly startTimeoutMs: number;
  readonly apiServerArgs: readonly string[];
}

/** A TETHER_ERR_CONTROL_PLANE_OPTIONS error; `message` starts with the field path. */
export function optionsError(message: string): ControlPlaneError {
  return new ControlPlaneError("TETHER_ERR_CONTROL_PLANE_OPTIONS", message);
}

/** Checks every option, naming the field of the first bad one. */
export function validateOptions(options: ControlPlaneOptions): Settings {
  const { controllers = false, dir, startTimeoutMs = DEFAULT_START_TIMEOUT_MS, apiServerArgs = [] } = options;
  if (typeof controllers !== "boolean" && !Array.isArray(controllers)) {
    throw optionsError("options.controllers must be a boolean or an array of controller names");
  }
  const names = controllers === true ? DEFAULT_CONTROLLERS : controllers === false ? [] : controllers;
  names.forEach((name, i) => {
    if (typeof name !== "string" || !/^[a-z0-9*-]+$/.test(name)) {
      throw optionsError(
        `options.controllers[${i}] must be a controller name like "garbage-collector-controller"`,
      );
    }
  });
  if (dir !== undefined && (typeof dir !== "string" || dir === "")) {
    throw optionsError("options.dir must be a non-empty path");
  }
  if (typeof startTimeoutMs !== "number" || !Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
    throw optionsError("options.startTimeoutMs must be a positive number of milliseconds");
  }
  apiServerArgs.forEach((arg, i) => {
    if (typeof arg !== "string" || !arg.startsWith("--")) {
      throw optionsError(`options.apiServerArgs[${i}] must be a flag like "--feature-gates=..."`);
    }
  });
  return {
    controllers: names,
    dir: dir === undefined ? undefined : resolve(dir),
    startTimeoutMs,
    apiServerArgs,
  };
}
