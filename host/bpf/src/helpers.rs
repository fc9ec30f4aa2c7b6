//! Names of BPF helpers schedlab does not provide, so a refusal can say
//! which one a program wanted (the kernel's numbering, `bpf.h`).

pub fn unsupported_helper_name(n: u32) -> Option<&'static str> {
    Some(match n {
        4 => "bpf_probe_read",
        12 => "bpf_tail_call",
        14 => "bpf_get_current_pid_tgid",
        15 => "bpf_get_current_uid_gid",
        16 => "bpf_get_current_comm",
        25 => "bpf_perf_event_output",
        35 => "bpf_get_current_task",
        112 => "bpf_probe_read_user",
        114 => "bpf_probe_read_user_str",
        130 => "bpf_ringbuf_output",
        131 => "bpf_ringbuf_reserve",
        132 => "bpf_ringbuf_submit",
        133 => "bpf_ringbuf_discard",
        134 => "bpf_ringbuf_query",
        158 => "bpf_get_current_task_btf",
        164 => "bpf_for_each_map_elem",
        165 => "bpf_snprintf",
        177 => "bpf_trace_vprintk",
        181 => "bpf_loop",
        182 => "bpf_strncmp",
        _ => return None,
    })
}
