// Reads one MCAP file with @mcap/core's McapIndexedReader (the reader Foxglove uses for
// indexed files) and prints what it saw as one JSON object on stdout:
//   {statistics: {messageCount, channelMessageCounts: {topic: n}}, chunkCount,
//    messages: [[topic, logTime, sequence, byteLength], ...]}   (logTime as a string)
// Usage: NODE_PATH=<dir holding node_modules/@mcap/core> node mcap_indexed_read.cjs FILE
"use strict";
const fs = require("fs/promises");
const { McapIndexedReader } = require("@mcap/core");

async function main(path) {
  const handle = await fs.open(path, "r");
  try {
    const readable = {
      size: async () => BigInt((await handle.stat()).size),
      read: async (offset, length) => {
        const buf = new Uint8Array(Number(length));
        const { bytesRead } = await handle.read(buf, 0, Number(length), Number(offset));
        if (bytesRead !== Number(length)) throw new Error(`short read at ${offset}`);
        return buf;
      },
    };
    const reader = await McapIndexedReader.Initialize({ readable });
    const topics = new Map();
    for (const [id, ch] of reader.channelsById) topics.set(id, ch.topic);
    const counts = {};
    const stats = reader.statistics;
    if (stats) {
      for (const [id, n] of stats.channelMessageCounts) counts[topics.get(id)] = Number(n);
    }
    const messages = [];
    for await (const m of reader.readMessages()) {
      messages.push([topics.get(m.channelId), m.logTime.toString(), m.sequence, m.data.byteLength]);
    }
    process.stdout.write(JSON.stringify({
      statistics: stats ? { messageCount: Number(stats.messageCount), channelMessageCounts: counts }
        : null,
      chunkCount: reader.chunkIndexes.length,
      messages,
    }));
  } finally {
    await handle.close();
  }
}

main(process.argv[2]).catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
