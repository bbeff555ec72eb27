// Imported first by cli.ts, before any module that builds a zod schema (zod reads this setting as each
// object schema is built). The sidecar validates a config at start, on a reload and on each xDS update,
// never per request. zod's default compiles a parser per object schema with `new Function` on its first
// parse: heap for code that runs a handful of times, and V8's optimizing compiler woken at start-up
// (idle RSS +6 MB, bench/RESULTS.md). The interpreted path checks exactly the same.
import { config } from "zod";

config({ jitless: true });
