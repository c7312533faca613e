// The call verification code: five words both people read to each other.
//
// Implements docs/verification.md (version 2) exactly, as the Python client does
// (ringfence.calls.verification); both are tested against verification/vectors.json.
// The words come from the DTLS fingerprints this side saw in its local and remote
// SDP: without a man in the middle both sides saw the same two fingerprints and show
// the same words; with one, they differ. Nothing here is sent or stored.

const DOMAIN = "ringfence/call-verification/v2";
// Hash functions of RFC 8122's registry, strongest first.
const STRENGTH = ["sha-512", "sha-384", "sha-256", "sha-224", "sha-1", "md5", "md2"];
const WORD_COUNT = 5;
const WORDS_URL = new URL("./verification/words.json", import.meta.url);

// Python's str.splitlines() and str.strip() / \s, so that an unusual SDP is read the
// same way by both clients (real SDPs are ASCII with CRLF line ends).
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const TRIM = new RegExp(`^[${WS}]+|[${WS}]+$`, "g");
const FINGERPRINT_LINE = new RegExp(`^a=fingerprint:([^${WS}]+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)[${WS}]*$`);

const encoder = new TextEncoder();

/**
 * Compare two strings by their UTF-8 bytes (which differs from JavaScript's UTF-16
 * order for characters beyond the Basic Multilingual Plane).
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareUtf8(a, b) {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = /** @type {number} */ (x[i]) - /** @type {number} */ (y[i]);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * "sha-256 AB:CD:...": algorithm in lower case, hex in upper case.
 * @param {string} algorithm
 * @param {string} value
 */
export function canonicalFingerprint(algorithm, value) {
  return `${algorithm.toLowerCase()} ${value.toUpperCase()}`;
}

/** @param {string} fingerprint */
function strength(fingerprint) {
  const rank = STRENGTH.indexOf(fingerprint.split(" ", 1)[0] ?? "");
  return rank === -1 ? STRENGTH.length : rank;
}

/**
 * The fingerprint that stands for an SDP's certificate, canonical: of its
 * a=fingerprint lines, the one with the strongest hash function (the smallest by
 * UTF-8 bytes if that leaves several); null when the SDP carries none (then there is
 * no code). Not the whole set: aiortc offers three hash functions for one
 * certificate and the browser keeps only the strongest in its remote description.
 * @param {string} sdp
 * @returns {string | null}
 */
export function sdpFingerprint(sdp) {
  /** @type {Set<string>} */
  const found = new Set();
  for (const line of sdp.split(LINE_BREAK)) {
    const match = FINGERPRINT_LINE.exec(line.replace(TRIM, ""));
    if (match) found.add(canonicalFingerprint(/** @type {string} */ (match[1]), /** @type {string} */ (match[2])));
  }
  if (found.size === 0) return null;
  return [...found].sort((a, b) => strength(a) - strength(b) || compareUtf8(a, b))[0] ?? null;
}

/**
 * The message that is hashed: the domain tag, a zero byte, then call_id and the two
 * fingerprint sets in canonical order, each as a 4-byte big-endian length + UTF-8.
 * @param {string} callId
 * @param {string} localFingerprints
 * @param {string} remoteFingerprints
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function verificationMessage(callId, localFingerprints, remoteFingerprints) {
  const [first, second] = [localFingerprints, remoteFingerprints].sort(compareUtf8);
  const parts = [encoder.encode(DOMAIN), new Uint8Array([0])];
  for (const field of [callId, /** @type {string} */ (first), /** @type {string} */ (second)]) {
    const raw = encoder.encode(field);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, raw.length, false);
    parts.push(length, raw);
  }
  const message = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    message.set(part, offset);
    offset += part.length;
  }
  return message;
}

/**
 * SHA-256 of the message (crypto.subtle: available on https and localhost).
 * @param {string} callId
 * @param {string} localFingerprints
 * @param {string} remoteFingerprints
 * @returns {Promise<Uint8Array>}
 */
export async function verificationDigest(callId, localFingerprints, remoteFingerprints) {
  const message = verificationMessage(callId, localFingerprints, remoteFingerprints);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", message));
}

/** @type {Promise<readonly string[]> | null} */
let wordsPromise = null;

/**
 * The fixed table of 256 words (fetched once, then cached; a failed fetch is retried
 * on the next call).
 * @returns {Promise<readonly string[]>}
 */
export function words() {
  if (!wordsPromise) {
    wordsPromise = loadWords();
    wordsPromise.catch(() => {
      wordsPromise = null;
    });
  }
  return wordsPromise;
}

/** @returns {Promise<readonly string[]>} */
async function loadWords() {
  const response = await fetch(WORDS_URL, { credentials: "omit", referrerPolicy: "no-referrer" });
  if (!response.ok) throw new Error(`the word table couldn't be loaded (${response.status})`);
  /** @type {any} */
  const data = await response.json();
  const table = data?.words;
  if (!Array.isArray(table) || table.length !== 256 || !table.every((w) => typeof w === "string") || new Set(table).size !== 256) {
    throw new Error("the verification word table must hold 256 distinct words");
  }
  return Object.freeze([.../** @type {string[]} */ (table)]);
}

/**
 * The five words to compare, from this side's local and remote SDP; null when either
 * SDP carries no DTLS fingerprint.
 * @param {string} callId
 * @param {string} localSdp
 * @param {string} remoteSdp
 * @returns {Promise<string[] | null>}
 */
export async function verificationCode(callId, localSdp, remoteSdp) {
  const local = sdpFingerprint(localSdp);
  const remote = sdpFingerprint(remoteSdp);
  if (local === null || remote === null) return null;
  const [table, digest] = await Promise.all([words(), verificationDigest(callId, local, remote)]);
  return Array.from(digest.subarray(0, WORD_COUNT), (b) => /** @type {string} */ (table[b]));
}
