// A TCP proxy between a client and the server that a test can cut: `cut()` drops every
// live connection, `down`/`up()` refuses new ones for a while, and `dropResponse(match)`
// lets the next request containing `match` reach the server but kills the connection
// before its answer gets back (the server did the work; the client saw a network error).
import { createServer, connect } from "node:net";

export class Proxy {
  constructor(target) {
    const url = new URL(target);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.pairs = new Set();
    this.refusing = false;
    this.dropMatch = null;
    this.dropped = 0;
    this.server = createServer((client) => this.accept(client));
  }

  start() {
    return new Promise((ok) =>
      this.server.listen(0, "127.0.0.1", () => {
        this.url = `http://127.0.0.1:${this.server.address().port}`;
        ok(this);
      }),
    );
  }

  accept(client) {
    if (this.refusing) return client.destroy();
    const upstream = connect(this.port, this.host);
    const pair = { client, upstream, drop: false };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("data", (chunk) => {
      if (this.dropMatch && chunk.includes(this.dropMatch)) {
        this.dropMatch = null;
        pair.drop = true;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (pair.drop) {
        this.dropped += 1;
        return end();
      }
      client.write(chunk);
    });
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  }

  /** Kill every live connection (both sides). */
  cut() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  down() {
    this.refusing = true;
    this.cut();
  }

  up() {
    this.refusing = false;
  }

  dropResponse(match) {
    this.dropMatch = Buffer.from(match);
  }

  close() {
    this.cut();
    return new Promise((ok) => this.server.close(() => ok()));
  }
}
