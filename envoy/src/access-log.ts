// Envoy's access_log on the http_connection_manager and tcp_proxy: the stdout and file loggers
// (envoy.access_loggers.stdout / .file) with a log_format of text_format_source.inline_string or
// json_format. Formats are compiled here, so an unknown %COMMAND% is a config error naming the field.
import * as z from "zod";
import { AccessLogFormatError, jsonFormatter, textFormatter, type JsonFormat } from "./access-log-format.ts";

export const STDOUT_ACCESS_LOG_TYPE =
  "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
export const STDERR_ACCESS_LOG_TYPE =
  "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
export const FILE_ACCESS_LOG_TYPE =
  "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

export type JsonFormatInput = { [key: string]: string | JsonFormatInput };
const jsonFormatSchema: z.ZodType<JsonFormatInput> = z.lazy(() =>
  z.record(z.string(), z.union([z.string(), jsonFormatSchema])),
);

/** Envoy's SubstitutionFormatString, the subset Tether writes. */
export const logFormatSchema = z
  .strictObject({
    text_format_source: z.strictObject({ inline_string: z.string().min(1) }).optional(),
    json_format: jsonFormatSchema.optional(),
  })
  .superRefine((f, ctx) => {
    if ((f.text_format_source === undefined) === (f.json_format === undefined)) {
      ctx.addIssue({ code: "custom", message: "exactly one of text_format_source, json_format is required" });
      return;
    }
    try {
      if (f.text_format_source !== undefined) textFormatter(f.text_format_source.inline_string);
      else jsonFormatter(f.json_format as JsonFormat);
    } catch (err) {
      if (!(err instanceof AccessLogFormatError)) throw err;
      const where = f.text_format_source !== undefined ? ["text_format_source", "inline_string"] : [];
      ctx.addIssue({ code: "custom", path: where, message: err.message });
    }
  });

const streamLogger = (type: typeof STDOUT_ACCESS_LOG_TYPE | typeof STDERR_ACCESS_LOG_TYPE) =>
  z.strictObject({ "@type": z.literal(type), log_format: logFormatSchema.optional() });

export const accessLogSchema = z.strictObject({
  name: z.string().min(1),
  typed_config: z.discriminatedUnion("@type", [
    streamLogger(STDOUT_ACCESS_LOG_TYPE),
    streamLogger(STDERR_ACCESS_LOG_TYPE),
    z.strictObject({
      "@type": z.literal(FILE_ACCESS_LOG_TYPE),
      path: z.string().min(1),
      log_format: logFormatSchema.optional(),
    }),
  ]),
});

export const accessLogListSchema = z.array(accessLogSchema).max(8).default([]);

export type AccessLogConfig = z.output<typeof accessLogSchema>;
export type LogFormatConfig = z.output<typeof logFormatSchema>;
