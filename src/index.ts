// libforks for Bun: a fork server, fd passing and process supervision.

export { ForkServer } from "./server.ts";
export type { Entrypoint, ForkOptions, SpawnOptions, StdioOption, StdinOption, StartOptions, WorkerOptions } from "./server.ts";
export { workerName, WORKER_ENV, MAX_WORKER_DEPTH } from "./worker.ts";
export { Child } from "./child.ts";
export { ExitEvent } from "./exit-event.ts";
export { ServerConn } from "./conn.ts";
export type { SharedConn, WaitResult } from "./conn.ts";
export { Channel } from "./channel.ts";
export { sendFds, recvFds, MAX_FDS } from "./fd-passing.ts";
export { CHANNEL_FD_ENV } from "./parent-channel.ts";
export { SerializedChannel, connectToParent } from "./serialization.ts";
export type { Serialization } from "./serialization.ts";
export { socketPair, pipe } from "./fds.ts";
export { PipeWriter } from "./stdio.ts";
export type { SendOptions } from "./channel.ts";
export type { Message } from "./fd-passing.ts";
export { LibforksError } from "./errors.ts";
export type { LibforksErrorCode } from "./errors.ts";
export type { ArgumentError } from "./node-errors.ts";
export { libraryPath, platformKey } from "./native.ts";

import { lib } from "./native.ts";
/** Version of the native library loaded, e.g. `"0.1.0"`. */
export const nativeVersion: string = String(lib.libforks_version());
