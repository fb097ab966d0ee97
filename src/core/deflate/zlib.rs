//! The zlib-API backends: stock zlib (through `libz-sys`: the system's, or its
//! bundled source) and zlib-ng's native build (through `libz-ng-sys`), raw
//! DEFLATE streams with the window bits, memory level and level asked for. One
//! body of code, instantiated for each library by [`zlib_backend!`]: the two
//! crates expose the same API.
//!
//! Owns every `unsafe` call into either library and the lifetime of their
//! streams. It must never be used except through the traits of
//! `deflate::backend`.

/// The implementation over one zlib-API crate, as a module of its own.
macro_rules! zlib_backend {
    ($module:ident, $crate_name:ident) => {
        pub mod $module {
            use std::ffi::c_int;
            use std::mem::size_of;

            use ::$crate_name as z;

            use crate::core::deflate::backend::{
                Compressor, CorruptData, Decompressor, DeflateSettings, Inflated,
            };

            /// zlib's allocator hooks, over the C heap (what zlib itself would use).
            unsafe extern "C" fn zalloc(
                _opaque: z::voidpf,
                items: z::uInt,
                size: z::uInt,
            ) -> z::voidpf {
                match (items as usize).checked_mul(size as usize) {
                    Some(n) => libc::malloc(n),
                    None => std::ptr::null_mut(),
                }
            }

            unsafe extern "C" fn zfree(_opaque: z::voidpf, ptr: z::voidpf) {
                libc::free(ptr)
            }

            /// A zeroed stream with our allocator, boxed: zlib keeps a pointer to it, so it
            /// must never move once initialised.
            fn new_stream() -> Box<z::z_stream> {
                let mut stream = Box::<z::z_stream>::new_uninit();
                // SAFETY: every field of z_stream is an integer or a raw pointer, for which
                // zero is valid, except the two allocator function pointers, which are
                // written before the value is assumed initialised.
                unsafe {
                    let p = stream.as_mut_ptr();
                    std::ptr::write_bytes(p, 0, 1);
                    std::ptr::addr_of_mut!((*p).zalloc).write(zalloc);
                    std::ptr::addr_of_mut!((*p).zfree).write(zfree);
                    stream.assume_init()
                }
            }

            const STREAM_SIZE: c_int = size_of::<z::z_stream>() as c_int;

            /// Output space made per `deflate` call, at least.
            const MIN_OUTPUT_STEP: usize = 256;

            /// A zlib deflate stream producing raw DEFLATE.
            pub struct ZlibCompressor {
                stream: Box<z::z_stream>,
            }

            impl ZlibCompressor {
                pub fn new(settings: DeflateSettings) -> Option<ZlibCompressor> {
                    let mut stream = new_stream();
                    let bits = c_int::from(settings.window_bits.clamp(9, 15));
                    let level = c_int::from(settings.level.min(9));
                    let memory = c_int::from(settings.memory_level.clamp(1, 9));
                    // SAFETY: a zeroed stream with allocator hooks, as deflateInit2 expects;
                    // negative window bits select raw DEFLATE.
                    let rc = unsafe {
                        z::deflateInit2_(
                            &mut *stream,
                            level,
                            z::Z_DEFLATED,
                            -bits,
                            memory,
                            z::Z_DEFAULT_STRATEGY,
                            z::zlibVersion(),
                            STREAM_SIZE,
                        )
                    };
                    (rc == z::Z_OK).then_some(ZlibCompressor { stream })
                }
            }

            impl Compressor for ZlibCompressor {
                fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
                    let s = &mut *self.stream;
                    let mut rest = input;
                    loop {
                        let take = rest.len().min(z::uInt::MAX as usize);
                        let last = take == rest.len();
                        s.next_in = rest.as_ptr().cast_mut();
                        s.avail_in = take as z::uInt;
                        let flush = if last { z::Z_SYNC_FLUSH } else { z::Z_NO_FLUSH };
                        loop {
                            out.reserve((s.avail_in as usize / 2).clamp(MIN_OUTPUT_STEP, 1 << 20));
                            let spare = (out.capacity() - out.len()).min(z::uInt::MAX as usize);
                            // SAFETY: next_out points at `spare` writable bytes of `out`'s
                            // capacity; zlib writes at most avail_out of them and we then
                            // extend the length by exactly what it wrote.
                            let rc = unsafe {
                                s.next_out = out.as_mut_ptr().add(out.len());
                                s.avail_out = spare as z::uInt;
                                let rc = z::deflate(s, flush);
                                out.set_len(out.len() + spare - s.avail_out as usize);
                                rc
                            };
                            if rc != z::Z_OK && rc != z::Z_BUF_ERROR {
                                s.next_in = std::ptr::null_mut();
                                return false;
                            }
                            if s.avail_in == 0 && s.avail_out != 0 {
                                break;
                            }
                        }
                        rest = &rest[take..];
                        if last {
                            break;
                        }
                    }
                    // Never leave a pointer into the caller's buffers behind.
                    s.next_in = std::ptr::null_mut();
                    s.next_out = std::ptr::null_mut();
                    true
                }

                fn reset(&mut self) {
                    // SAFETY: an initialised stream.
                    unsafe { z::deflateReset(&mut *self.stream) };
                }
            }

            impl Drop for ZlibCompressor {
                fn drop(&mut self) {
                    // SAFETY: an initialised stream, ended once.
                    unsafe { z::deflateEnd(&mut *self.stream) };
                }
            }

            /// A zlib inflate stream reading raw DEFLATE.
            pub struct ZlibDecompressor {
                stream: Box<z::z_stream>,
            }

            impl ZlibDecompressor {
                pub fn new(window_bits: u8) -> Option<ZlibDecompressor> {
                    let mut stream = new_stream();
                    let bits = c_int::from(window_bits.clamp(8, 15));
                    // SAFETY: as for deflateInit2_.
                    let rc = unsafe {
                        z::inflateInit2_(&mut *stream, -bits, z::zlibVersion(), STREAM_SIZE)
                    };
                    (rc == z::Z_OK).then_some(ZlibDecompressor { stream })
                }
            }

            impl Decompressor for ZlibDecompressor {
                fn inflate(
                    &mut self,
                    input: &[u8],
                    out: &mut Vec<u8>,
                    room: usize,
                ) -> Result<Inflated, CorruptData> {
                    let s = &mut *self.stream;
                    let take = input.len().min(z::uInt::MAX as usize);
                    let room = room.min(z::uInt::MAX as usize);
                    out.reserve(room);
                    s.next_in = input.as_ptr().cast_mut();
                    s.avail_in = take as z::uInt;
                    // SAFETY: as in compress: `room` bytes of spare capacity, and the length
                    // grows by what zlib wrote. inflate never writes through next_in.
                    let rc = unsafe {
                        s.next_out = out.as_mut_ptr().add(out.len());
                        s.avail_out = room as z::uInt;
                        let rc = z::inflate(s, z::Z_SYNC_FLUSH);
                        out.set_len(out.len() + room - s.avail_out as usize);
                        rc
                    };
                    let consumed = take - s.avail_in as usize;
                    s.next_in = std::ptr::null_mut();
                    s.next_out = std::ptr::null_mut();
                    match rc {
                        z::Z_OK | z::Z_BUF_ERROR => Ok(Inflated {
                            consumed,
                            ended: false,
                        }),
                        z::Z_STREAM_END => Ok(Inflated {
                            consumed,
                            ended: true,
                        }),
                        _ => Err(CorruptData),
                    }
                }

                fn reset(&mut self) {
                    // SAFETY: an initialised stream.
                    unsafe { z::inflateReset(&mut *self.stream) };
                }
            }

            impl Drop for ZlibDecompressor {
                fn drop(&mut self) {
                    // SAFETY: an initialised stream, ended once.
                    unsafe { z::inflateEnd(&mut *self.stream) };
                }
            }
        }
    };
}

zlib_backend!(stock, libz_sys);
zlib_backend!(ng, libz_ng_sys);
