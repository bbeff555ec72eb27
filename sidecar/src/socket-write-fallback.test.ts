// A Node without the stream_wrap binding (process.binding refuses it): writeOut still writes, through
// socket.write. A file of its own: the binding is looked up once per module instance.
import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { writeOut } from "./socket-write.ts";

type Binding = (name: string) => unknown;
const proc = process as unknown as { binding: Binding };
const original = proc.binding;
const asked: string[] = [];

beforeAll(() => {
  proc.binding = (name: string) => {
    asked.push(name);
    throw new Error(`No such module: ${name}`);
  };
});
afterAll(() => {
  proc.binding = original;
});

it("writes through socket.write when node offers no stream_wrap binding", async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const received = new Promise<string>((resolve) => {
    server.once("connection", (peer) => {
      let text = "";
      peer.on("data", (c: Buffer) => (text += c.toString()));
      peer.once("end", () => {
        resolve(text);
      });
    });
  });
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise<void>((resolve) => client.once("connect", resolve));
  const flushed = new Promise<Error | null>((resolve) => writeOut(client, "one,", resolve));
  writeOut(client, Buffer.from("two"));
  client.end();
  expect(await flushed).toBeFalsy();
  expect(await received).toBe("one,two");
  expect(asked).toEqual(["stream_wrap"]);
  server.close();
});
