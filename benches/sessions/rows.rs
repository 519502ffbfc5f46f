//! The rows scripts/perf-table records from this bench (`perf-row` lines):
//! the launches, warm launches, host processes, stop and memory of the
//! report above them.

use std::time::Duration;

use super::{TARGET_RSS_MIB, TARGET_THREE_SERVER_RATIO, TARGET_WARM_MS, TARGET_WARM_SPEEDUP};
use crate::support::{median, ms, pct, perf_row};

/// What the report printed, each sample list sorted; cases in the order
/// hello 1, hello 3, node 1, node 3.
pub struct Figures<'a> {
    pub cold: &'a [Vec<Duration>],
    /// Hello, one server, through an mcpod that did not build the image.
    pub cold_elsewhere: &'a [Duration],
    pub warm: &'a [Vec<Duration>],
    pub b_hello: &'a [Duration],
    pub b_node: &'a [Duration],
    pub b_node3: &'a [Duration],
    pub m_stop: &'a [Duration],
    pub b_stop: &'a [Duration],
    /// Per session: (podman, conmon), with one server and with three.
    pub procs: [(f64, f64); 2],
    /// VmRSS idle and with `sessions` sessions, MiB.
    pub rss: (f64, f64),
    pub sessions: usize,
}

fn met(holds: bool) -> &'static str {
    if holds { "met" } else { "missed" }
}

fn x(a: &[Duration], b: &[Duration]) -> f64 {
    median(a).as_secs_f64() / median(b).as_secs_f64()
}

pub fn print(f: &Figures<'_>) {
    let (cold, warm) = (f.cold, f.warm);
    perf_row(
        "launch → tools listed, hello, 1 server, cold",
        &format!(
            "{:.1} ms median (p90 {:.1})",
            ms(median(&cold[0])),
            ms(pct(&cold[0], 90.0))
        ),
        &format!(
            "bare `podman run -i` + initialize + tools/list, same flags: {:.1} ms",
            ms(median(f.b_hello))
        ),
        &format!("{:.3}x", x(&cold[0], f.b_hello)),
        "",
    );
    perf_row(
        "same, a tag that mcpod did not build (`mcpod build` elsewhere)",
        &format!(
            "{:.1} ms median (p90 {:.1})",
            ms(median(f.cold_elsewhere)),
            ms(pct(f.cold_elsewhere, 90.0))
        ),
        "the same baseline",
        &format!("{:.3}x", x(f.cold_elsewhere, f.b_hello)),
        "",
    );
    let r = x(&cold[1], f.b_hello);
    perf_row(
        "same, 3 servers, cold",
        &format!("{:.1} ms", ms(median(&cold[1]))),
        "the 1-server baseline",
        &format!("{r:.3}x"),
        &format!(
            "≤ {TARGET_THREE_SERVER_RATIO}x: {}",
            met(r <= TARGET_THREE_SERVER_RATIO)
        ),
    );
    perf_row(
        "node `server-everything`, 1 server, cold",
        &format!("{:.1} ms", ms(median(&cold[2]))),
        &format!("bare `podman run -i` of it: {:.1} ms", ms(median(f.b_node))),
        &format!("{:.3}x", x(&cold[2], f.b_node)),
        "",
    );
    let r = x(&cold[3], f.b_node);
    perf_row(
        "node, 3 servers (everything ×2, memory), cold",
        &format!("{:.1} ms", ms(median(&cold[3]))),
        &format!(
            "the 1-server baseline: {r:.3}x; three bare runs at once: {:.0} ms",
            ms(median(f.b_node3))
        ),
        &format!("{:.3}x of three bare runs", x(&cold[3], f.b_node3)),
        &format!(
            "≤ {TARGET_THREE_SERVER_RATIO}x of one: {}",
            met(r <= TARGET_THREE_SERVER_RATIO)
        ),
    );
    for (what, cases, baseline, b) in [
        (
            "warm launch (`--warm`), hello 1 / 3 servers",
            [0, 1],
            "the hello baseline",
            f.b_hello,
        ),
        (
            "warm launch, node 1 / 3 servers",
            [2, 3],
            "the node baseline",
            f.b_node,
        ),
    ] {
        let [a, c] = cases.map(|i| (ms(median(&warm[i])), 1.0 / x(&warm[i], b)));
        let holds = [a, c]
            .iter()
            .all(|(m, speedup)| *m < TARGET_WARM_MS && *speedup >= TARGET_WARM_SPEEDUP);
        perf_row(
            what,
            &format!("{:.1} / {:.1} ms median", a.0, c.0),
            baseline,
            &format!("{:.0}x / {:.0}x faster", a.1, c.1),
            &format!(
                "< {TARGET_WARM_MS} ms, ≥ {TARGET_WARM_SPEEDUP}x: {}",
                met(holds)
            ),
        );
    }
    let [one, three] = f.procs;
    let each = [one.0, one.1, three.0, three.1];
    let single = each.iter().all(|n| (n - 1.0).abs() < 0.01);
    perf_row(
        "host processes per session",
        &if single {
            "1 podman, 1 conmon, for 1 and for 3 servers".to_string()
        } else {
            format!(
                "1 server: {:.2} podman, {:.2} conmon; 3 servers: {:.2} podman, {:.2} conmon",
                one.0, one.1, three.0, three.1
            )
        },
        "",
        "",
        &format!("one of each: {}", met(single)),
    );
    perf_row(
        "stop_session (hello)",
        &format!("{:.1} ms", ms(median(f.m_stop))),
        &format!(
            "the baseline's stdin EOF → podman exits: {:.1} ms",
            ms(median(f.b_stop))
        ),
        "",
        "",
    );
    perf_row(
        "mcpod resident memory",
        &format!(
            "{:.1} MiB idle, {:.1} MiB with {} sessions",
            f.rss.0, f.rss.1, f.sessions
        ),
        "",
        "",
        &format!("< {TARGET_RSS_MIB} MiB: {}", met(f.rss.1 < TARGET_RSS_MIB)),
    );
}
