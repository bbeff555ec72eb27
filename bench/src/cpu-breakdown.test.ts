import { describe, expect, it } from "vitest";
import { breakdown, breakdownTable, categorize, countSamples } from "./cpu-breakdown.ts";

// `perf script -F comm,tid,ip,sym` of a Node process recorded with -g, cut to a few frames each.
const SCRIPT = `MainThread  3072 
	ffffffff8204c53a ip_rcv
	ffffffff81eb094e net_rx_action
	ffffffff82064eeb tcp_sendmsg
	ffffffff816dcb43 ksys_write
	ffffffff8223c951 do_syscall_64
	           f838f __GI___libc_write
	          6e81a9 node::StreamBase::WriteBuffer
	    7fa2a1de0c95 JS:*'writeOut /app/sidecar.cjs:253:4568

MainThread  3072 
	ffffffff81e9a2b0 _raw_spin_unlock_irqrestore
	ffffffff8123c9a0 schedule_hrtimeout_range_clock
	ffffffff817a3b10 do_epoll_wait
	ffffffff817a3e20 __x64_sys_epoll_pwait
	ffffffff8223c951 do_syscall_64
	           2a3f1 epoll_pwait
	         162278a uv__io_poll

MainThread  3072 
	ffffffff81f7e1c0 tcp_recvmsg_locked
	ffffffff816dc1b3 ksys_read
	           f8300 read

MainThread  3072 
	         168a803 Builtins_KeyedLoadICBaseline
	    7fa2a1de0c95 JS:*'writeOut /app/sidecar.cjs:253:4568

MainThread  3072 
	    7fa2a1df51ee JS:*'onAttemptEnd /app/sidecar.cjs:231:12600
	    7fa2a1df43b6 JS:*'execute /app/sidecar.cjs:214:438

MainThread  3072 
	    7fa2a1df9000 RegExp.> src: '^[a-z]+$' flags: ''

MainThread  3072 
	          a22df1 v8::internal::(anonymous namespace)::Invoke
	          886867 v8::Function::Call

MainThread  3072 
	          886867 v8::Function::Call
	          401b97 node::InternalMakeCallback

MainThread  3072 
	          6e835a node::StreamBase::CallJSOnreadMethod

MainThread  3072 
	          5f1a20 llhttp__internal__run

MainThread  3072 
	         1619332 uv__read

MainThread  3072 
	           9a1c4 __memmove_avx512_unaligned_erms

MainThread  3072 
	ffffffff81002a10 asm_sysvec_apic_timer_interrupt
`;

describe("cpu-breakdown", () => {
  it("sorts kernel samples by the system call below them and user samples by their leaf", () => {
    const counts = countSamples(SCRIPT);
    expect(Object.fromEntries([...counts].filter(([, n]) => n > 0))).toEqual({
      "kernel: send (write, writev, sendto)": 1,
      "kernel: wait (epoll)": 1,
      "kernel: receive (read, recvfrom)": 1,
      "kernel: other": 1,
      "JavaScript (JIT-compiled)": 2,
      "V8 built-ins (ICs, strings, arrays)": 1,
      "V8 runtime (slow paths, GC, compiler)": 1,
      "V8 embedder API": 1,
      "Node C++": 1,
      llhttp: 1,
      libuv: 1,
      "other user space (libc; binaries without symbols)": 1,
    });
  });

  it("names HAProxy's sendto as a send", () => {
    expect(
      categorize([
        { ip: "ffffffff82064eeb", sym: "tcp_sendmsg" },
        { ip: "ffffffff81e6e4a0", sym: "__sys_sendto" },
        { ip: "4a1b2c", sym: "[unknown]" },
      ]),
    ).toBe("kernel: send (write, writev, sendto)");
  });

  it("shares the measured CPU time out by samples, per request", () => {
    const counts = countSamples(SCRIPT);
    // 13 samples; 0.26 s of CPU over 2000 requests: 130 µs each, 10 µs per sample.
    const b = breakdown("tether-sidecar", counts, 0.26, 2000, 0, 2);
    expect(b.cores).toBeCloseTo(0.13, 10);
    expect(b.samples).toBe(13);
    expect(b.perRequestUs.get("JavaScript (JIT-compiled)")).toBeCloseTo(20, 10);
    expect(b.perRequestUs.get("llhttp")).toBeCloseTo(10, 10);
    const table = breakdownTable([b]);
    expect(table).toContain("| **µs of CPU per request** | **130.0** |");
    expect(table).toContain("| kernel, all | 40.0 |");
    expect(table).toContain("| user space, all | 90.0 |");
  });

  it("reports no per-request figure when no request was served", () => {
    const b = breakdown("haproxy", countSamples(SCRIPT), 0.1, 0, 0, 1);
    expect(breakdownTable([b])).toContain("| **µs of CPU per request** | **—** |");
  });
});
