//! Architecture-neutral CPU register state and its conversion to and from the x64 and
//! x86 `CONTEXT` records.

use crate::consts::{amd64, i386, INITIAL_FPCSR, INITIAL_MXCSR};
use crate::le::LeField;
use crate::structs::{Context32, Context64, FloatingSaveArea, XmmSaveArea32};

/// Register values of one CPU. For x86 dumps only the low 32 bits of each register
/// are stored (`rax` → `Eax`, `rip` → `Eip`, ...; `r8`..`r15` are dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuContext {
    /// RAX / EAX.
    pub rax: u64,
    /// RCX / ECX.
    pub rcx: u64,
    /// RDX / EDX.
    pub rdx: u64,
    /// RBX / EBX.
    pub rbx: u64,
    /// RSP / ESP.
    pub rsp: u64,
    /// RBP / EBP.
    pub rbp: u64,
    /// RSI / ESI.
    pub rsi: u64,
    /// RDI / EDI.
    pub rdi: u64,
    /// R8 (x64 only).
    pub r8: u64,
    /// R9 (x64 only).
    pub r9: u64,
    /// R10 (x64 only).
    pub r10: u64,
    /// R11 (x64 only).
    pub r11: u64,
    /// R12 (x64 only).
    pub r12: u64,
    /// R13 (x64 only).
    pub r13: u64,
    /// R14 (x64 only).
    pub r14: u64,
    /// R15 (x64 only).
    pub r15: u64,
    /// RIP / EIP.
    pub rip: u64,
    /// RFLAGS / EFLAGS (the CONTEXT stores 32 bits).
    pub rflags: u64,
    /// CS selector.
    pub cs: u16,
    /// DS selector.
    pub ds: u16,
    /// ES selector.
    pub es: u16,
    /// FS selector.
    pub fs: u16,
    /// GS selector.
    pub gs: u16,
    /// SS selector.
    pub ss: u16,
    /// DR0.
    pub dr0: u64,
    /// DR1.
    pub dr1: u64,
    /// DR2.
    pub dr2: u64,
    /// DR3.
    pub dr3: u64,
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// MXCSR. Written both to `CONTEXT.MxCsr` and into the FXSAVE image (overriding the
    /// image's own copy): readers reject a dump where the two differ.
    pub mxcsr: u32,
    /// The 512-byte FXSAVE image (legacy region of XSAVE), if the FPU state is known.
    /// When `None`, an initial image is written (FCW 0x27F, MXCSR = `mxcsr`).
    pub fxsave: Option<[u8; 512]>,
}

impl Default for CpuContext {
    /// All registers zero, MXCSR = `INITIAL_MXCSR` (0x1F80), no FPU image.
    fn default() -> Self {
        Self {
            rax: 0,
            rcx: 0,
            rdx: 0,
            rbx: 0,
            rsp: 0,
            rbp: 0,
            rsi: 0,
            rdi: 0,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rip: 0,
            rflags: 0,
            cs: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
            ss: 0,
            dr0: 0,
            dr1: 0,
            dr2: 0,
            dr3: 0,
            dr6: 0,
            dr7: 0,
            mxcsr: INITIAL_MXCSR,
            fxsave: None,
        }
    }
}

/// Low 32 bits of a register (x86 CONTEXT fields are 32-bit).
fn lo32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

impl CpuContext {
    /// The FXSAVE image to store: the given one or an initial one, with `mxcsr` set.
    pub fn fxsave_area(&self) -> XmmSaveArea32 {
        let mut area = match &self.fxsave {
            Some(img) => XmmSaveArea32::read_le(img).unwrap_or_else(XmmSaveArea32::zeroed),
            None => {
                let mut a = XmmSaveArea32::zeroed();
                a.control_word = INITIAL_FPCSR;
                a
            }
        };
        area.mx_csr = self.mxcsr;
        area
    }

    /// The x64 `CONTEXT` with `ContextFlags = CONTEXT_ALL` (0x10001F).
    pub fn to_context64(&self) -> Context64 {
        let mut c = Context64::zeroed();
        c.context_flags = amd64::CONTEXT_ALL;
        c.mx_csr = self.mxcsr;
        c.seg_cs = self.cs;
        c.seg_ds = self.ds;
        c.seg_es = self.es;
        c.seg_fs = self.fs;
        c.seg_gs = self.gs;
        c.seg_ss = self.ss;
        c.eflags = lo32(self.rflags);
        c.dr0 = self.dr0;
        c.dr1 = self.dr1;
        c.dr2 = self.dr2;
        c.dr3 = self.dr3;
        c.dr6 = self.dr6;
        c.dr7 = self.dr7;
        c.rax = self.rax;
        c.rcx = self.rcx;
        c.rdx = self.rdx;
        c.rbx = self.rbx;
        c.rsp = self.rsp;
        c.rbp = self.rbp;
        c.rsi = self.rsi;
        c.rdi = self.rdi;
        c.r8 = self.r8;
        c.r9 = self.r9;
        c.r10 = self.r10;
        c.r11 = self.r11;
        c.r12 = self.r12;
        c.r13 = self.r13;
        c.r14 = self.r14;
        c.r15 = self.r15;
        c.rip = self.rip;
        c.flt_save = self.fxsave_area();
        c
    }

    /// The x86 `CONTEXT` with `ContextFlags = CONTEXT_ALL` (0x1003F); `FloatSave` is
    /// derived from the FXSAVE image, which also goes to `ExtendedRegisters`.
    pub fn to_context32(&self) -> Context32 {
        let fx = self.fxsave_area();
        let mut c = Context32::zeroed();
        c.context_flags = i386::CONTEXT_ALL;
        c.dr0 = lo32(self.dr0);
        c.dr1 = lo32(self.dr1);
        c.dr2 = lo32(self.dr2);
        c.dr3 = lo32(self.dr3);
        c.dr6 = lo32(self.dr6);
        c.dr7 = lo32(self.dr7);
        c.float_save = fnsave_from_fxsave(&fx);
        c.seg_gs = u32::from(self.gs);
        c.seg_fs = u32::from(self.fs);
        c.seg_es = u32::from(self.es);
        c.seg_ds = u32::from(self.ds);
        c.edi = lo32(self.rdi);
        c.esi = lo32(self.rsi);
        c.ebx = lo32(self.rbx);
        c.edx = lo32(self.rdx);
        c.ecx = lo32(self.rcx);
        c.eax = lo32(self.rax);
        c.ebp = lo32(self.rbp);
        c.eip = lo32(self.rip);
        c.seg_cs = u32::from(self.cs);
        c.eflags = lo32(self.rflags);
        c.esp = lo32(self.rsp);
        c.seg_ss = u32::from(self.ss);
        c.extended_registers = fx;
        c
    }

    /// Registers of an x64 `CONTEXT`. `fxsave` is taken from `FltSave` when
    /// `CONTEXT_FLOATING_POINT` is set; `mxcsr` is `CONTEXT.MxCsr`.
    pub fn from_context64(c: &Context64) -> Self {
        let fp = c.context_flags & amd64::CONTEXT_FLOATING_POINT == amd64::CONTEXT_FLOATING_POINT;
        Self {
            rax: c.rax,
            rcx: c.rcx,
            rdx: c.rdx,
            rbx: c.rbx,
            rsp: c.rsp,
            rbp: c.rbp,
            rsi: c.rsi,
            rdi: c.rdi,
            r8: c.r8,
            r9: c.r9,
            r10: c.r10,
            r11: c.r11,
            r12: c.r12,
            r13: c.r13,
            r14: c.r14,
            r15: c.r15,
            rip: c.rip,
            rflags: u64::from(c.eflags),
            cs: c.seg_cs,
            ds: c.seg_ds,
            es: c.seg_es,
            fs: c.seg_fs,
            gs: c.seg_gs,
            ss: c.seg_ss,
            dr0: c.dr0,
            dr1: c.dr1,
            dr2: c.dr2,
            dr3: c.dr3,
            dr6: c.dr6,
            dr7: c.dr7,
            mxcsr: c.mx_csr,
            fxsave: fp.then(|| xmm_area_bytes(&c.flt_save)),
        }
    }

    /// Registers of an x86 `CONTEXT`. `fxsave` is `ExtendedRegisters` when
    /// `CONTEXT_EXTENDED_REGISTERS` is set, and `mxcsr` its MXCSR (else 0x1F80).
    pub fn from_context32(c: &Context32) -> Self {
        let ext =
            c.context_flags & i386::CONTEXT_EXTENDED_REGISTERS == i386::CONTEXT_EXTENDED_REGISTERS;
        // Selectors are 16-bit; the CONTEXT stores them in dwords.
        let sel = |v: u32| (v & 0xFFFF) as u16;
        Self {
            rax: u64::from(c.eax),
            rcx: u64::from(c.ecx),
            rdx: u64::from(c.edx),
            rbx: u64::from(c.ebx),
            rsp: u64::from(c.esp),
            rbp: u64::from(c.ebp),
            rsi: u64::from(c.esi),
            rdi: u64::from(c.edi),
            rip: u64::from(c.eip),
            rflags: u64::from(c.eflags),
            cs: sel(c.seg_cs),
            ds: sel(c.seg_ds),
            es: sel(c.seg_es),
            fs: sel(c.seg_fs),
            gs: sel(c.seg_gs),
            ss: sel(c.seg_ss),
            dr0: u64::from(c.dr0),
            dr1: u64::from(c.dr1),
            dr2: u64::from(c.dr2),
            dr3: u64::from(c.dr3),
            dr6: u64::from(c.dr6),
            dr7: u64::from(c.dr7),
            mxcsr: if ext {
                c.extended_registers.mx_csr
            } else {
                INITIAL_MXCSR
            },
            fxsave: ext.then(|| xmm_area_bytes(&c.extended_registers)),
            ..Self::default()
        }
    }
}

fn xmm_area_bytes(a: &XmmSaveArea32) -> [u8; 512] {
    let mut out = [0u8; 512];
    a.write_le(&mut out);
    out
}

/// x87 tag of one 80-bit register value: 0 valid, 1 zero, 2 special.
fn x87_tag(reg: &[u8]) -> u32 {
    let mantissa = crate::le::u64_at(reg, 0).unwrap_or(0);
    let exponent = u16::read_le(reg.get(8..).unwrap_or(&[])).unwrap_or(0) & 0x7FFF;
    match exponent {
        0x7FFF => 2,
        0 if mantissa == 0 => 1,
        0 => 2,
        _ if mantissa >> 63 == 1 => 0,
        _ => 2,
    }
}

/// Converts FXSAVE x87 state to the FNSAVE layout of `FLOATING_SAVE_AREA`.
pub(crate) fn fnsave_from_fxsave(fx: &XmmSaveArea32) -> FloatingSaveArea {
    let mut f = FloatingSaveArea::zeroed();
    f.control_word = u32::from(fx.control_word);
    f.status_word = u32::from(fx.status_word);
    f.error_offset = fx.error_offset;
    f.error_selector = u32::from(fx.error_selector) | (u32::from(fx.error_opcode & 0x7FF) << 16);
    f.data_offset = fx.data_offset;
    f.data_selector = u32::from(fx.data_selector);
    // FXSAVE keeps ST(i) in 16-byte slots, FNSAVE packs them in 10 bytes each.
    for (dst, src) in f
        .register_area
        .chunks_exact_mut(10)
        .zip(fx.float_registers.chunks_exact(16))
    {
        if let Some(s) = src.get(..10) {
            dst.copy_from_slice(s);
        }
    }
    // Full tag word: two bits per physical register; ST(i) is physical (TOP + i) % 8.
    let top = u32::from(fx.status_word >> 11) & 7;
    let mut tag = 0u32;
    for phys in 0..8u32 {
        let t = if fx.tag_word & (1 << phys) == 0 {
            3
        } else {
            let st = ((phys + 8 - top) % 8) as usize;
            x87_tag(fx.float_registers.get(st * 16..st * 16 + 10).unwrap_or(&[]))
        };
        tag |= t << (2 * phys);
    }
    f.tag_word = tag;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fp_state() {
        let c = CpuContext::default().to_context64();
        assert_eq!(c.context_flags, 0x10_001F);
        assert_eq!(c.mx_csr, 0x1F80);
        assert_eq!(c.flt_save.mx_csr, 0x1F80);
        assert_eq!(c.flt_save.control_word, 0x27F);
        let c = CpuContext::default().to_context32();
        assert_eq!(c.context_flags, 0x1_003F);
        assert_eq!(c.float_save.control_word, 0x27F);
        assert_eq!(c.float_save.tag_word, 0xFFFF);
        assert_eq!(c.extended_registers.mx_csr, 0x1F80);
    }

    #[test]
    fn mxcsr_overrides_fxsave_copy() {
        let mut img = [0u8; 512];
        img[0x18..0x1C].copy_from_slice(&0x1FA0u32.to_le_bytes());
        img[0] = 0x7F;
        let ctx = CpuContext {
            mxcsr: 0x9FC0,
            fxsave: Some(img),
            ..CpuContext::default()
        };
        let c = ctx.to_context64();
        assert_eq!((c.mx_csr, c.flt_save.mx_csr), (0x9FC0, 0x9FC0));
        assert_eq!(c.flt_save.control_word, 0x7F);
    }

    #[test]
    fn fnsave_tags_and_registers() {
        let mut fx = XmmSaveArea32::zeroed();
        // TOP = 6; ST(0) (physical 6) = 1.0, ST(1) (physical 7) = +0.0, rest empty.
        fx.status_word = 6 << 11;
        fx.tag_word = (1 << 6) | (1 << 7);
        fx.float_registers[7] = 0x80;
        fx.float_registers[8] = 0xFF;
        fx.float_registers[9] = 0x3F;
        fx.error_opcode = 0x1234;
        fx.error_selector = 0x23;
        let f = fnsave_from_fxsave(&fx);
        assert_eq!(f.tag_word, 0b0100_1111_1111_1111);
        assert_eq!(&f.register_area[..10], &fx.float_registers[..10]);
        assert_eq!(f.error_selector, 0x23 | (0x234 << 16));
    }

    #[test]
    fn x86_uses_low_halves() {
        let ctx = CpuContext {
            rip: 0xFFFF_FFFF_8123_4567,
            rsp: 0x1_0000_0010,
            cs: 8,
            ss: 0x10,
            ..CpuContext::default()
        };
        let c = ctx.to_context32();
        assert_eq!(
            (c.eip, c.esp, c.seg_cs, c.seg_ss),
            (0x8123_4567, 0x10, 8, 0x10)
        );
        let back = CpuContext::from_context32(&c);
        assert_eq!(back.rip, 0x8123_4567);
        assert_eq!(back.cs, 8);
    }

    #[test]
    fn x64_round_trip() {
        let mut img = [0u8; 512];
        img[0xA0] = 0x55;
        let ctx = CpuContext {
            rax: 1,
            r15: 15,
            rip: 0xFFFF_F800_0000_1000,
            rflags: 0x246,
            cs: 0x10,
            ss: 0x18,
            dr7: 0x400,
            mxcsr: 0x1F80,
            fxsave: Some({
                img[0x18..0x1C].copy_from_slice(&0x1F80u32.to_le_bytes());
                img
            }),
            ..CpuContext::default()
        };
        assert_eq!(CpuContext::from_context64(&ctx.to_context64()), ctx);
    }
}
