// Structured messages on a Channel: "json" (JSON text) or "advanced"
// (bun:jsc's structured clone: Map, Set, Date, BigInt, typed arrays,
// cycles...). Each message is one channel message, so ordering, fds and
// backpressure are the channel's: sends arrive in call order, any message
// may carry fds, and a send resolves once its bytes are in the socket
// (while the socket is full it waits, so awaiting each send bounds memory).

import { deserialize, serialize } from "bun:jsc";
import { closeSync } from "node:fs";
import { Channel, type SendOptions } from "./channel.ts";
import type { Message } from "./fd-passing.ts";
import { parentChannelFd } from "./parent-channel.ts";
import { LibforksError } from "./errors.ts";
import { invalidArgValue } from "./node-errors.ts";

/** "bytes": strings and bytes as they are (a string arrives as its UTF-8
 * bytes); "json": JSON.stringify / JSON.parse; "advanced": structured clone. */
export type Serialization = "bytes" | "json" | "advanced";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function checkSerialization(value: unknown, name: string): Serialization {
  if (value === undefined) return "bytes";
  if (value === "bytes" || value === "json" || value === "advanced") return value;
  throw invalidArgValue(name, value, 'must be "bytes", "json" or "advanced"');
}

export function encodeMessage(mode: "json" | "advanced", value: unknown): Uint8Array {
  if (mode === "json") {
    const text = JSON.stringify(value);
    if (text === undefined) throw invalidArgValue("data", value, "cannot be sent as JSON");
    return encoder.encode(text);
  }
  const buffer = serialize(value, { binaryType: "nodebuffer" });
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function decodeMessage(mode: "json" | "advanced", bytes: Uint8Array): unknown {
  try {
    return mode === "json" ? JSON.parse(decoder.decode(bytes)) : deserialize(bytes);
  } catch (error) {
    throw new LibforksError("PROTOCOL_ERROR", `a ${bytes.length}-byte message is not ${mode === "json" ? "JSON" : "a structured clone"}: ${(error as Error).message}`);
  }
}

/** A Channel whose messages are values: `send(value, { fds })`, and
 * `receive()` gives `{ data: value, fds }`. Both ends must use the same
 * serialization. */
export class SerializedChannel extends Channel {
  /** How values travel: `"json"` (JSON text) or `"advanced"` (bun:jsc's
   * structured clone: Map, Date, BigInt, typed arrays, ...). */
  readonly serialization: "json" | "advanced";

  constructor(fd: number, serialization: "json" | "advanced") {
    super(fd);
    this.serialization = serialization;
  }

  /** Sends one value (with fds, if given). */
  override send(value: unknown, options: SendOptions = {}): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(this.serialization, value);
    } catch (error) {
      return Promise.reject(error);
    }
    return super.send(bytes, options);
  }

  /** The next value with its fds, or null once the peer closed its end. A
   * message that does not decode rejects with PROTOCOL_ERROR, closing the
   * fds that came with it. */
  override async receive(): Promise<Message<any> | null> {
    const message = await super.receive();
    if (message === null) return null;
    try {
      return { data: decodeMessage(this.serialization, message.data), fds: message.fds };
    } catch (error) {
      for (const fd of message.fds) {
        closeSync(fd);
      }
      throw error;
    }
  }

  override async *[Symbol.asyncIterator](): AsyncIterator<Message<any>> {
    while (true) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }
}

/** Wraps a connected socket as a channel of the given serialization. */
export function channelFor(fd: number, serialization: Serialization): Channel {
  return serialization === "bytes" ? new Channel(fd) : new SerializedChannel(fd, serialization);
}

/** In a program started by `server.spawn`, the channel to the parent,
 * with the serialization the parent chose for it. */
export function connectToParent(options: { serialization: "json" | "advanced" }): SerializedChannel;
export function connectToParent(options?: { serialization?: Serialization }): Channel;
export function connectToParent(options: { serialization?: Serialization } = {}): Channel {
  if (options === null || typeof options !== "object") throw invalidArgValue("options", options, "must be an object");
  const serialization = checkSerialization(options.serialization, "options.serialization");
  return channelFor(parentChannelFd(), serialization);
}
