// A spawned program's channel to its parent: its fd, from the
// environment the parent set.

import { LibforksError } from "./errors.ts";
import { Channel } from "./channel.ts";

/** The environment variable (`"LIBFORKS_CHANNEL_FD"`) that tells a
 * program started by `server.spawn` or `spawnWorker` its channel's fd. */
export const CHANNEL_FD_ENV = "LIBFORKS_CHANNEL_FD";

/**
 * In a program started by `server.spawn` (with `channel`, the default) or
 * `server.spawnWorker`, the channel to the parent.
 *
 * @throws {LibforksError} `CHANNEL_CLOSED` when this process has no channel
 *   (`LIBFORKS_CHANNEL_FD` is not set).
 * @example
 * ```ts
 * const channel = connectToParent();
 * for await (const { data, fds } of channel) {
 *   // use data and fds
 * }
 * ```
 */
export function connectToParent(): Channel {
  return new Channel(parentChannelFd());
}

/** The fd of the channel to the parent, from the environment. */
export function parentChannelFd(): number {
  const value = process.env[CHANNEL_FD_ENV];
  if (value === undefined || !/^\d+$/.test(value)) {
    throw new LibforksError(
      "CHANNEL_CLOSED",
      `no channel to a parent: ${CHANNEL_FD_ENV} is not set (was this process started by server.spawn with channel: true?)`,
    );
  }
  return Number(value);
}
