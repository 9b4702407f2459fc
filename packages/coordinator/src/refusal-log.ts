/**
 * One log line per refused request (method, peer, code, reason; never the token, which no error
 * message contains). A flood of bad requests would flood the log, so at most `perWindow` lines are
 * written per window and the rest are counted in one summary line.
 */
export class RefusalLog {
  #windowStart = 0;
  #written = 0;
  #suppressed = 0;

  constructor(
    private readonly log: (line: string) => void,
    private readonly perWindow = 20,
    private readonly windowMs = 10_000,
  ) {}

  /** `peer` is the connection's ZeroMQ routing id (hex); zeromq does not expose addresses per message. */
  refused(method: string, peer: string, code: string, reason: string): void {
    const now = Date.now();
    if (now - this.#windowStart >= this.windowMs) {
      if (this.#suppressed > 0) this.log(`refused ${this.#suppressed} more request(s) not logged`);
      this.#windowStart = now;
      this.#written = 0;
      this.#suppressed = 0;
    }
    if (this.#written >= this.perWindow) {
      this.#suppressed++;
      return;
    }
    this.#written++;
    this.log(`refused ${method} from peer ${peer}: ${code} ${reason}`);
  }
}
