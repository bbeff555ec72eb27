import { describe, expect, it } from "vitest";
import { REDACTED, redactSecrets } from "./redact.ts";

describe("redactSecrets", () => {
  it("replaces the inline content of sensitive DataSources, wherever they are", () => {
    const config = {
      clusters: [
        {
          name: "c",
          transport_socket: {
            typed_config: {
              common_tls_context: {
                tls_certificates: [
                  {
                    certificate_chain: { inline_string: "CERT" },
                    private_key: { inline_string: "KEY" },
                    password: { inline_bytes: "cGFzcw==" },
                  },
                ],
              },
              session_ticket_keys: { keys: [{ inline_bytes: "a2V5" }, { filename: "/etc/tk" }] },
            },
          },
        },
      ],
    };
    const out = JSON.stringify(redactSecrets(config));
    expect(out).not.toMatch(/KEY"|cGFzcw|a2V5/);
    expect(redactSecrets(config)).toEqual({
      clusters: [
        {
          name: "c",
          transport_socket: {
            typed_config: {
              common_tls_context: {
                tls_certificates: [
                  {
                    certificate_chain: { inline_string: "CERT" },
                    private_key: { inline_string: REDACTED },
                    password: { inline_bytes: REDACTED },
                  },
                ],
              },
              session_ticket_keys: { keys: [{ inline_bytes: REDACTED }, { filename: "/etc/tk" }] },
            },
          },
        },
      ],
    });
  });

  it("leaves file names, other fields and the input untouched", () => {
    const config = { private_key: { filename: "/etc/tls.key" }, stat_prefix: "x" };
    expect(redactSecrets(config)).toEqual(config);
    const withKey = { private_key: { inline_string: "KEY" } };
    redactSecrets(withKey);
    expect(withKey.private_key.inline_string).toBe("KEY");
    expect(redactSecrets(undefined)).toBeUndefined();
  });
});
