/** Secrets the sidecar reads (TLS material), mounted read-only as whole directories. */
import { stableHash } from "./hash.ts";

export const SECRETS_DIR = "/etc/tether/secrets";

export interface SecretMount {
  readonly secretName: string;
  readonly volumeName: string;
  readonly mountPath: string;
}

/** The mount of one Secret; the volume name is a DNS label however long the Secret's name. */
export function secretMount(secretName: string): SecretMount {
  return {
    secretName,
    volumeName: `secret-${stableHash(secretName).slice(0, 12)}`,
    mountPath: `${SECRETS_DIR}/${secretName}`,
  };
}

export function secretFile(secretName: string, key: string): string {
  return `${secretMount(secretName).mountPath}/${key}`;
}

/** Deduplicated by Secret name, sorted, so the pod template is stable whatever the input order. */
export function uniqueMounts(names: Iterable<string>): SecretMount[] {
  return [...new Set(names)].sort().map(secretMount);
}
