//! A processor's registers as a kernel dump's CONTEXT record.

use vm2dmp_kdump::{consts, CpuContext};
use vm2dmp_source::CpuState;

/// The CONTEXT of a processor: general, segment-selector and debug registers, and the x87/SSE
/// state (MXCSR mirrored into FltSave), or the initial MXCSR when the source saved no FP state.
pub fn cpu_context(vp: &CpuState) -> CpuContext {
    CpuContext {
        rax: vp.rax,
        rcx: vp.rcx,
        rdx: vp.rdx,
        rbx: vp.rbx,
        rsp: vp.rsp,
        rbp: vp.rbp,
        rsi: vp.rsi,
        rdi: vp.rdi,
        r8: vp.r8,
        r9: vp.r9,
        r10: vp.r10,
        r11: vp.r11,
        r12: vp.r12,
        r13: vp.r13,
        r14: vp.r14,
        r15: vp.r15,
        rip: vp.rip,
        rflags: vp.rflags,
        cs: vp.cs.selector,
        ds: vp.ds.selector,
        es: vp.es.selector,
        fs: vp.fs.selector,
        gs: vp.gs.selector,
        ss: vp.ss.selector,
        dr0: vp.dr0,
        dr1: vp.dr1,
        dr2: vp.dr2,
        dr3: vp.dr3,
        dr6: vp.dr6,
        dr7: vp.dr7,
        mxcsr: vp.fp.map_or(consts::INITIAL_MXCSR, |f| f.mxcsr),
        fxsave: vp.fp.map(|f| f.fxsave()),
    }
}
