import { pino } from "pino";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, type CertifiedKey } from "../pki/index.ts";
import { WebhookServer } from "./server.ts";

const HOUR = 3_600_000;
const validity = { notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + HOUR) };

function servingFrom(ca: CertifiedKey): { cert: string; key: string } {
  const issued = issueServing(ca, ["localhost"], validity);
  return { cert: issued.certPem, key: issued.keyPem };
}

const caOne = createCa("tether test CA one", validity);
const caTwo = createCa("tether test CA two", validity);
const results: string[] = [];
let server: WebhookServer;
let port = 0;

/** One HTTPS request on a fresh connection that trusts only `ca`. */
async function call(
  ca: CertifiedKey,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  const dispatcher = new Agent({ connect: { ca: ca.certPem, servername: "localhost" } });
  try {
    const res = await request(`https://127.0.0.1:${port}${path}`, {
      method: method as "GET" | "POST",
      dispatcher,
      headers: { "content-type": "application/json" },
      ...(body === undefined ? {} : { body }),
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

const review = (annotations: Record<string, string>): string =>
  JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u-1",
      kind: { group: "", version: "v1", kind: "Pod" },
      operation: "CREATE",
      namespace: "shop",
      object: { metadata: { annotations }, spec: { containers: [{ name: "c", image: "i" }] } },
    },
  });

beforeAll(async () => {
  server = new WebhookServer({
    host: "127.0.0.1",
    port: 0,
    certificate: servingFrom(caOne),
    logger: pino({ level: "silent" }),
    synced: () => true,
    resolve: (namespace, agent) => ({
      ok: false,
      message: `Agent ${agent} not found in namespace ${namespace}`,
    }),
    onReview: (result) => {
      results.push(result);
    },
  });
  port = await server.start();
});

afterAll(async () => {
  await server.stop();
});

describe("WebhookServer", () => {
  it("answers AdmissionReviews over HTTPS on /mutate-pods", async () => {
    expect(await call(caOne, "GET", "/healthz")).toEqual({ status: 200, text: "ok\n" });
    const skipped = await call(caOne, "POST", "/mutate-pods", review({}));
    expect(skipped.status).toBe(200);
    expect(JSON.parse(skipped.text)).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u-1", allowed: true },
    });
    const denied = JSON.parse(
      (await call(caOne, "POST", "/mutate-pods", review({ "tether.dev/agent": "web" }))).text,
    ) as {
      response: { allowed: boolean; status: { code: number; message: string } };
    };
    expect(denied.response.allowed).toBe(false);
    expect(denied.response.status.message).toContain("Agent web not found in namespace shop");
    expect(results.slice(-2)).toEqual(["skipped", "denied"]);
  });

  it("refuses what is not an AdmissionReview v1, saying why", async () => {
    expect(await call(caOne, "POST", "/mutate-pods", "{not json")).toEqual({
      status: 400,
      text: "body: not JSON\n",
    });
    const old = await call(
      caOne,
      "POST",
      "/mutate-pods",
      JSON.stringify({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: {} }),
    );
    expect(old.status).toBe(400);
    expect(old.text).toContain("admissionReviewVersions: [v1]");
    expect(old.text).toContain("TETHER_ERR_ADMISSION_REVIEW");
    expect((await call(caOne, "GET", "/mutate-pods")).status).toBe(405);
    expect((await call(caOne, "GET", "/other")).status).toBe(404);
  });

  it("serves a replaced certificate on new connections", async () => {
    server.setCertificate(servingFrom(caTwo));
    expect((await call(caTwo, "GET", "/healthz")).status).toBe(200);
    await expect(call(caOne, "GET", "/healthz")).rejects.toThrow();
  });
});
