// undici's Pool without the rest of undici. The package's entry point loads fetch, WebSocket, the
// cache and mock layers too, which the sidecar never uses; loading only the dispatcher keeps about
// 12 MB out of the resident set. undici has no "exports" map, so the file path is public.
import { createRequire } from "node:module";
import type { Pool as UndiciPool } from "undici";

const require = createRequire(import.meta.url);

export type Pool = UndiciPool;
export const Pool = require("undici/lib/dispatcher/pool.js") as typeof UndiciPool;
export type PoolOptions = UndiciPool.Options;
