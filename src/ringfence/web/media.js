// Camera and microphone: asking for them, and saying plainly what went wrong.

/** @import { Media } from "./types.js" */

export class MediaAccessError extends Error {
  /**
   * @param {"denied" | "missing" | "busy" | "insecure" | "unknown"} kind
   * @param {string} message What to tell the user, including what to do about it.
   */
  constructor(kind, message) {
    super(message);
    this.name = "MediaAccessError";
    this.kind = kind;
  }
}

/**
 * @param {unknown} error
 * @param {boolean} wantedVideo
 * @returns {MediaAccessError}
 */
function explain(error, wantedVideo) {
  const devices = wantedVideo ? "camera and microphone" : "microphone";
  const name = error instanceof DOMException || error instanceof Error ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return new MediaAccessError(
        "denied",
        `Ringfence isn't allowed to use your ${devices}. Allow access in your browser's site settings, then try again.`,
      );
    case "NotFoundError":
    case "OverconstrainedError":
    case "DevicesNotFoundError":
      return new MediaAccessError("missing", `No ${wantedVideo ? "camera or microphone" : "microphone"} was found. Connect one and try again.`);
    case "NotReadableError":
    case "AbortError":
    case "TrackStartError":
      return new MediaAccessError(
        "busy",
        `Your ${devices} couldn't be started. Another app may be using it.`,
      );
    default:
      return new MediaAccessError("unknown", `Your ${devices} couldn't be used (${name || "unknown error"}).`);
  }
}

/**
 * Ask for the devices a call needs. A video call on a device with no usable camera
 * goes on with audio only, and says so.
 * @param {Media} media
 * @returns {Promise<{stream: MediaStream, notice: string | null}>}
 * @throws {MediaAccessError}
 */
export async function getCallMedia(media) {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new MediaAccessError("insecure", "Calls need a secure (https) connection to this server.");
  }
  const wantVideo = media === "video";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: wantVideo ? { width: { ideal: 640 }, height: { ideal: 480 } } : false,
    });
    return { stream, notice: null };
  } catch (error) {
    const problem = explain(error, wantVideo);
    if (!wantVideo || problem.kind !== "missing") throw problem;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    return { stream, notice: "No camera was found, so this call is audio only." };
  } catch (error) {
    throw explain(error, false);
  }
}
