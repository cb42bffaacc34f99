// Case 5's Bun echo worker, started with server.spawn: sends every message
// it receives back on its channel with the same fds, then closes its
// copies. Says "ready" first, so start-up is not measured.

import { closeSync } from "node:fs";
import { connectToParent } from "../../../src/index.ts";

const channel = connectToParent();
await channel.send("ready");
for await (const { data, fds } of channel) {
  await channel.send(data, { fds });
  for (const fd of fds) closeSync(fd);
}
