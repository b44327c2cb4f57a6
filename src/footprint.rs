//! Gives back the code only start-up ran, once the agent is up.
//!
//! The install build's functions are laid out by `scripts/code-order.txt` (build.rs hands
//! it to lld): what the running agent uses first, then what only start-up used (between
//! the two markers below), then everything the profile never saw run. Once the loop has
//! turned, [`give_back_startup_code`] drops all of the code after the running agent's
//! (from the first marker to the end of `.text`) from the process's resident set with
//! `madvise(MADV_DONTNEED)`. It has to include the never-seen code too: this kernel maps a
//! whole page-cache folio (up to 128 KiB here) on one fault, so the start-up's calls into
//! it left large runs of it resident. The pages
//! are clean file pages of the binary, so a function in it that runs again later just
//! faults back in from the page cache. It can never change what the program does, only
//! how much of it is resident (docs/benchmarks.md, "Code laid out by use").
//!
//! Only in the build that is laid out that way (x86_64 static musl release); elsewhere
//! the markers sit wherever the linker put them and nothing is dropped.

/// First byte of the start-up-only code (`scripts/code-order.txt` places it there).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn smollama_startup_code_begin() -> u32 {
    // Distinct bodies, so no linker folds the two markers into one.
    0x5ba2_7001
}

/// Just past the start-up-only code (kept in the order file, so its layout is visible in
/// a symbols build; the range given back runs on to the end of `.text`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn smollama_startup_code_end() -> u32 {
    0x5ba2_70e2
}

/// Whether this build was linked with the code order (build.rs sets `code_order` only
/// when it hands lld the order file: not where no lld was found).
const LAID_OUT: bool = cfg!(code_order);

/// `.text` is under 3 MiB; anything far larger means the marker was not placed by the
/// order file, and dropping it would only cost page faults.
const MAX_RANGE: usize = 8 << 20;

unsafe extern "C" {
    /// The end of the code, defined by the linker (lld and GNU ld both provide it).
    static etext: u8;
}

/// Drops the start-up-only code from the resident set; returns the bytes given back
/// (0 where the build is not laid out by use).
pub(crate) fn give_back_startup_code() -> usize {
    if !LAID_OUT {
        return 0;
    }
    let page = 4096;
    let begin = (smollama_startup_code_begin as *const () as usize).next_multiple_of(page);
    let end = std::ptr::addr_of!(etext) as usize / page * page;
    // Referenced, so the order file's second marker is kept in the binary.
    std::hint::black_box(smollama_startup_code_end as *const ());
    if end <= begin || end - begin > MAX_RANGE {
        return 0;
    }
    // SAFETY: the range is page-aligned and lies inside the binary's own text mapping
    // (from one of its functions to the end of its code); MADV_DONTNEED on a private file mapping with
    // clean pages only unmaps them, and they fault back from the file when run.
    let rc = unsafe { libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_DONTNEED) };
    if rc == 0 { end - begin } else { 0 }
}
