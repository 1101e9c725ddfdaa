/**
 * AES-256-CFB encryption (CFB128, the mode of OpenPGP's SEIPDv1) computed through AES-256-CBC.
 *
 * CFB encrypts block i as C_i = P_i xor E(C_{i-1}), C_0 = IV. CBC encrypts as
 * X_i = E(Q_i xor X_{i-1}). Run CBC over the plaintext with the IV E(IV_cfb): then
 * X_1 = E(P_1 xor E(IV)) = E(C_1), and by induction X_i = E(C_i) — the CFB key stream one block
 * ahead. So C_i = P_i xor X_{i-1} (X_0 = E(IV)): the same bytes as CFB, from one CBC pass and
 * one XOR. The chain is as serial as CFB's, but OpenSSL runs CBC as one assembly loop and CFB
 * block by block through a function pointer: here CBC + XOR takes ~1.4-1.6 CPU-s/GB where
 * `createCipheriv('aes-256-cfb')` takes ~2.0-2.2 (the encryption worker's bottleneck).
 *
 * Decryption (P_i = C_i xor E(C_{i-1})) uses the same XOR over an ECB pass of the ciphertext,
 * whose blocks are all at hand, so AES-NI runs several at once (createAes256CfbDecryptor).
 *
 * The XOR of the whole blocks runs in a tiny WebAssembly SIMD function (JavaScript's typed-array
 * loop costs ~0.5 CPU-s/GB, as much as it saves); the bytes of a block split across calls are
 * XORed in JavaScript. Where WebAssembly SIMD is not available, `createAes256CfbEncryptor`
 * returns Node's own CFB cipher. Where the cfb-sha1 addon runs (native-cfb.ts), it encrypts
 * instead: faster still, and into the caller's buffer.
 */
import { createCipheriv, createDecipheriv, type Cipher } from 'node:crypto';
import { createNativeCfb } from './native-cfb.ts';

/** What the SEIPDv1 encoder needs of a cipher. */
export interface StreamEncryptor {
  update(data: Uint8Array): Buffer;
  /** Ends the stream (no output for CFB) and wipes what the cipher holds where it can. */
  final(): Buffer;
}

const BLOCK = 16;
/** Whole blocks XORed per call of the WebAssembly function (bounded scratch memory). */
const SPAN = 64 * 1024;

/**
 * `xor(dst, a, b, n)`: dst[0..n) = a[0..n) ^ b[0..n), n a multiple of 16, with v128 loads and
 * stores, over an exported memory of 4 pages (256 KiB: the scratch below). Hand-assembled; the layout is:
 * header, type (i32 i32 i32 i32) -> (), one function, one memory, exports "mem" and "xor", code.
 */
const XOR_WASM = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  0x01, 0x08, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, // type section: (i32 x4) -> ()
  0x03, 0x02, 0x01, 0x00, // function section: function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x04, // memory section: min 4 pages
  0x07, 0x0d, 0x02, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x03, 0x78, 0x6f, 0x72, 0x00, 0x00, // exports "mem", "xor"
  0x0a, 0x41, 0x01, 0x3f, 0x00, // code section, one body of 63 bytes, no locals
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x03, 0x45, 0x0d, 0x01, // if n == 0 break
  0x20, 0x00, // dst
  0x20, 0x01, 0xfd, 0x00, 0x04, 0x00, // v128.load a
  0x20, 0x02, 0xfd, 0x00, 0x04, 0x00, // v128.load b
  0xfd, 0x51, // v128.xor
  0xfd, 0x0b, 0x04, 0x00, // v128.store dst
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // dst += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // a += 16
  0x20, 0x02, 0x41, 0x10, 0x6a, 0x21, 0x02, // b += 16
  0x20, 0x03, 0x41, 0x10, 0x6b, 0x21, 0x03, // n -= 16
  0x0c, 0x00, // continue
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
]);

interface Xor {
  memory: Uint8Array;
  xor(dst: number, a: number, b: number, n: number): void;
}

/** Scratch layout: plaintext at A, the key stream (previous block + CBC output) at B, result at C (ends below 256 KiB). */
const A = 0;
const B = SPAN + BLOCK;
const C = 2 * SPAN + 4 * BLOCK;

let shared: Xor | null | undefined;

/** The WebAssembly XOR of this thread (one per thread: calls are synchronous), or null if unsupported. */
function wasmXor(): Xor | null {
  if (shared !== undefined) return shared;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(XOR_WASM));
    const mem = instance.exports.mem as WebAssembly.Memory;
    const xor = instance.exports.xor as Xor['xor'];
    shared = { memory: new Uint8Array(mem.buffer), xor };
  } catch {
    shared = null;
  }
  return shared;
}

/** True if this thread encrypts CFB through CBC + XOR (WebAssembly SIMD runs here). */
export function cfbThroughCbc(): boolean {
  return wasmXor() !== null;
}

/**
 * An AES-256-CFB encryptor (byte-wise stream: any chunk lengths, same bytes as
 * `createCipheriv('aes-256-cfb', key, iv)`): the native addon where it runs, else CBC + XOR
 * where WebAssembly SIMD runs, else Node's CFB.
 */
export function createAes256CfbEncryptor(key: Uint8Array, iv: Uint8Array): StreamEncryptor {
  const native = createNativeCfb(key, iv);
  if (native !== null) return native;
  const xor = wasmXor();
  if (xor === null) return createCipheriv('aes-256-cfb', key, iv);
  return new CbcCfbEncryptor(key, iv, xor);
}

/** See the module comment. */
class CbcCfbEncryptor implements StreamEncryptor {
  private readonly cfb: KeyStreamXor;

  constructor(key: Uint8Array, iv: Uint8Array, x: Xor) {
    const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const first = ecb.update(iv);
    ecb.final();
    // CBC over the plaintext from the IV E(IV): its output block i is E(C_i).
    this.cfb = new KeyStreamXor(createCipheriv('aes-256-cbc', key, first).setAutoPadding(false), first, x);
  }

  update(data: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(data.length);
    this.cfb.updateInto(data, out);
    return out;
  }

  final(): Buffer {
    this.cfb.final();
    return Buffer.alloc(0);
  }
}

/**
 * The CFB XOR over a cipher pass that turns each input block into the key stream of the block
 * after it, E(C_i): CBC over the plaintext when encrypting (see the module comment), ECB over
 * the ciphertext when decrypting. Whole blocks go through the pass and one WebAssembly XOR;
 * the bytes of a block split across calls are XORed in JavaScript with the key stream at hand.
 */
class KeyStreamXor {
  /** Key stream of the current block: E(C_{i-1}). */
  private stream: Buffer;
  /** Input bytes of the current block seen so far (its first `pos`). */
  private readonly partial = Buffer.alloc(BLOCK);
  private pos = 0;

  constructor(
    private readonly pass: Cipher,
    first: Buffer,
    private readonly x: Xor,
  ) {
    this.stream = first;
  }

  /** Writes data.length output bytes to `out` (which may not overlap `data`). */
  updateInto(data: Uint8Array, out: Uint8Array): void {
    let i = 0;
    // Finish the block an earlier call began, byte by byte.
    if (this.pos > 0) {
      const n = Math.min(BLOCK - this.pos, data.length);
      for (let k = 0; k < n; k++) {
        const d = data[k] as number;
        out[k] = d ^ (this.stream[this.pos + k] as number);
        this.partial[this.pos + k] = d;
      }
      this.pos += n;
      i = n;
      if (this.pos < BLOCK) return;
      this.stream = this.pass.update(this.partial);
      this.pos = 0;
    }
    // Whole blocks: the pass gives the next key streams, one XOR gives the output.
    const m = this.x.memory;
    while (data.length - i >= BLOCK) {
      const n = Math.min(SPAN, (data.length - i) & ~(BLOCK - 1));
      const input = data.subarray(i, i + n);
      const next = this.pass.update(input);
      m.set(input, A);
      m.set(this.stream, B);
      m.set(next.subarray(0, n - BLOCK), B + BLOCK);
      this.x.xor(C, A, B, n);
      out.set(m.subarray(C, C + n), i);
      this.stream = next.subarray(n - BLOCK);
      i += n;
    }
    // The start of a block that the next call finishes: its key stream is known already.
    for (let k = 0; i + k < data.length; k++) {
      const d = data[i + k] as number;
      out[i + k] = d ^ (this.stream[k] as number);
      this.partial[k] = d;
      this.pos = k + 1;
    }
  }

  final(): void {
    this.pass.final();
    this.partial.fill(0);
  }
}

/** What the SEIPDv1 decoder needs of a cipher: `updateInto` writes data.length bytes to `out`. */
export interface StreamDecryptor {
  updateInto(data: Uint8Array, out: Uint8Array): void;
  final(): void;
}

/**
 * An AES-256-CFB decryptor (same bytes as `createDecipheriv('aes-256-cfb', key, iv)`), through
 * ECB + XOR where WebAssembly SIMD runs. Decryption is P_i = C_i xor E(C_{i-1}): every key
 * stream block comes from ciphertext already at hand, so one ECB pass over the ciphertext
 * (shifted by a block) gives them all, and ECB runs AES-NI on several blocks at once — ~1.8 GB/s
 * here against ~470 MB/s for Node's CFB decipher, which goes block by block. The output goes
 * into a buffer the caller gives (it may be a reused one); `out` may not overlap `data`.
 */
export function createAes256CfbDecryptor(key: Uint8Array, iv: Uint8Array): StreamDecryptor {
  const xor = wasmXor();
  if (xor !== null) {
    const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    // ECB over the ciphertext: its output block i is E(C_i), the key stream of block i + 1.
    return new KeyStreamXor(ecb, ecb.update(iv), xor);
  }
  const decipher = createDecipheriv('aes-256-cfb', key, iv);
  return {
    updateInto: (data, out) => out.set(decipher.update(data)),
    final: () => void decipher.final(),
  };
}
