import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_SIDECAR_IMAGE, loadConfig, usage, type OperatorConfig } from "./config.ts";
import { resourceOfPath } from "./metrics.ts";

const load = (argv: string[], env: Record<string, string> = {}): OperatorConfig => {
  const c = loadConfig(argv, env);
  if (c === "help") throw new Error("help");
  return c;
};

describe("loadConfig", () => {
  it("runs the xDS server on 0.0.0.0:18000 by default; --xds-service points bootstraps at it", () => {
    expect(load([])).toMatchObject({ xds: { host: "0.0.0.0", port: 18000 }, xdsService: undefined });
    expect(load(["--xds-address", ""])).toMatchObject({ xds: undefined });
    expect(load([], { TETHER_XDS_SERVICE: "tether-xds.tether-system" })).toMatchObject({
      xdsService: "tether-xds.tether-system",
    });
    expect(() => load(["--xds-service", "no-namespace"])).toThrow(/--xds-service/);
    expect(() => load(["--xds-service", "a.b", "--xds-address", ""])).toThrow(/--xds-address/);
    expect(() => load(["--xds-address", "x:99999"])).toThrow(/--xds-address/);
  });

  it("serves the admission webhook only with --webhook-address, naming where the API server reaches it", () => {
    expect(load([]).webhook).toBeUndefined();
    expect(
      load(["--webhook-address", ":9443", "--webhook-service", "tether-webhook.tether-system"], {
        POD_NAMESPACE: "tether-system",
        TETHER_WEBHOOK_CONFIGURATION: "tether-injector",
      }).webhook,
    ).toEqual({
      host: "0.0.0.0",
      port: 9443,
      service: { name: "tether-webhook", namespace: "tether-system" },
      extraDnsNames: [],
      configurationName: "tether-injector",
    });
    expect(
      load(["--webhook-address", "127.0.0.1:0", "--webhook-extra-dns-names", "localhost, webhook.test"])
        .webhook,
    ).toMatchObject({
      service: undefined,
      extraDnsNames: ["localhost", "webhook.test"],
      configurationName: undefined,
    });
    expect(() => load(["--webhook-address", ":9443"])).toThrow(/--webhook-service/);
    expect(() => load(["--webhook-address", ":9443", "--webhook-service", "svc"])).toThrow(
      /--webhook-service/,
    );
    expect(() => load(["--webhook-address", "nope", "--webhook-service", "a.b"])).toThrow(
      /--webhook-address/,
    );
    expect(() => load(["--webhook-address", ":1", "--webhook-extra-dns-names", "Not_A_Name"])).toThrow(
      /--webhook-extra-dns-names/,
    );
  });

  it("serves xDS over TLS by default, the CA in Secret tether-ca of the pod's namespace", () => {
    expect(load([], { POD_NAMESPACE: "tether-system" })).toMatchObject({
      xdsTls: true,
      caSecret: "tether-ca",
      operatorNamespace: "tether-system",
    });
    expect(load(["--xds-tls", "false", "--ca-secret", "my-ca"])).toMatchObject({
      xdsTls: false,
      caSecret: "my-ca",
    });
    expect(() => load(["--ca-secret", "Not_A_Name"])).toThrow(/--ca-secret/);
    expect(() => load(["--xds-tls", "maybe"])).toThrow(/--xds-tls/);
  });

  it("serves xDS with a cert-manager Secret when --xds-tls-secret names one", () => {
    expect(load([]).xdsTlsSecret).toBeUndefined();
    expect(load(["--xds-tls-secret", "tether-xds-tls"]).xdsTlsSecret).toBe("tether-xds-tls");
    expect(load([], { TETHER_XDS_TLS_SECRET: "from-env" }).xdsTlsSecret).toBe("from-env");
    expect(() => load(["--xds-tls-secret", "Bad_Name"])).toThrow(/--xds-tls-secret/);
    expect(() => load(["--xds-tls-secret", "x", "--xds-tls", "false"])).toThrow(/--xds-tls-secret needs/);
  });

  it("bounds the identity check's concurrent reviews", () => {
    expect(load([])).toMatchObject({ xdsAuthMaxReviews: 16, xdsAuthQueueTimeoutMs: 10_000 });
    expect(load(["--xds-auth-max-reviews", "4", "--xds-auth-queue-timeout", "500ms"])).toMatchObject({
      xdsAuthMaxReviews: 4,
      xdsAuthQueueTimeoutMs: 500,
    });
    expect(() => load(["--xds-auth-max-reviews", "0"])).toThrow(/--xds-auth-max-reviews/);
    expect(() => load(["--xds-auth-queue-timeout", "soon"])).toThrow(/--xds-auth-queue-timeout/);
  });

  it("has the documented defaults", () => {
    const c = load([], { POD_NAMESPACE: "tether-system" });
    expect(c).toMatchObject({
      namespaces: [],
      sidecarImage: DEFAULT_SIDECAR_IMAGE,
      adminHost: "0.0.0.0",
      adminPort: 8080,
      leaderElect: true,
      leaseName: "tether-operator",
      leaseNamespace: "tether-system",
      leaseDurationMs: 10_000,
      renewDeadlineMs: 7_000,
      retryPeriodMs: 2_000,
      concurrency: 4,
      resyncPeriodMs: 600_000,
      clusterDomain: "cluster.local",
      sidecarImagePullPolicy: "",
      nativeSidecar: true,
    });
    expect(load(["--native-sidecar", "false"]).nativeSidecar).toBe(false);
    expect(load([], { TETHER_NATIVE_SIDECAR: "false" }).nativeSidecar).toBe(false);
    expect(DEFAULT_SIDECAR_IMAGE).toBe("localhost/tether/sidecar:0.1.0");
  });

  it("takes environment variables, and flags over them", () => {
    const env = { TETHER_NAMESPACES: "a, b", TETHER_SIDECAR_IMAGE: "env:1", TETHER_LEADER_ELECT: "false" };
    expect(load([], env)).toMatchObject({
      namespaces: ["a", "b"],
      sidecarImage: "env:1",
      leaderElect: false,
    });
    expect(load(["--sidecar-image", "flag:2", "--namespaces", "*"], env)).toMatchObject({
      sidecarImage: "flag:2",
      namespaces: [],
    });
  });

  it("rejects bad values naming the flag, with a stable code", () => {
    expect(() => load(["--concurrency", "0"])).toThrow(/--concurrency/);
    expect(() => load(["--sidecar-image-pull-policy", "Sometimes"])).toThrow(/--sidecar-image-pull-policy/);
    expect(load([], { TETHER_SIDECAR_IMAGE_PULL_POLICY: "Never" }).sidecarImagePullPolicy).toBe("Never");
    expect(() => load(["--admin-address", "nope"])).toThrow(/--admin-address/);
    expect(() => load(["--lease-duration", "5s", "--renew-deadline", "6s"])).toThrow(/--renew-deadline/);
    expect(() => load(["--unknown"])).toThrow(ConfigError);
    try {
      load(["--leader-elect", "maybe"]);
    } catch (error) {
      expect((error as ConfigError).code).toBe("TETHER_ERR_OPERATOR_CONFIG");
    }
  });

  it("prints usage for --help", () => {
    expect(loadConfig(["--help"], {})).toBe("help");
    expect(usage()).toContain("--sidecar-image");
  });
});

describe("resourceOfPath", () => {
  it("names the resource and subresource of a REST path", () => {
    expect(resourceOfPath("/apis/apps/v1/namespaces/ns/deployments/web")).toBe("deployments");
    expect(resourceOfPath("/apis/tether.dev/v1alpha1/namespaces/ns/agents/web/status")).toBe("agents/status");
    expect(resourceOfPath("/api/v1/namespaces/ns/events")).toBe("events");
  });
});
