// Per http_connection_manager counters (envoy_http_* with envoy_http_conn_manager_prefix).
import { Histogram } from "../../upstream/stats.ts";

export class HttpStats {
  readonly prefix: string;
  downstream_cx_total = 0;
  downstream_cx_active = 0;
  downstream_cx_protocol_error = 0;
  downstream_rq_total = 0;
  downstream_rq_active = 0;
  downstream_rq_1xx = 0;
  downstream_rq_2xx = 0;
  downstream_rq_3xx = 0;
  downstream_rq_4xx = 0;
  downstream_rq_5xx = 0;
  downstream_rq_timeout = 0;
  downstream_rq_header_timeout = 0;
  downstream_rq_idle_timeout = 0;
  downstream_cx_idle_timeout = 0;
  downstream_rq_ws_on_non_ws_route = 0;
  no_route = 0;
  no_cluster = 0;
  rq_overflow = 0;
  readonly downstream_rq_time = new Histogram();

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  countStatus(status: number): void {
    if (status < 200) this.downstream_rq_1xx++;
    else if (status < 300) this.downstream_rq_2xx++;
    else if (status < 400) this.downstream_rq_3xx++;
    else if (status < 500) this.downstream_rq_4xx++;
    else this.downstream_rq_5xx++;
  }
}
