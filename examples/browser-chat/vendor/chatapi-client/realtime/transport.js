/** A failed open: `fatal` when retrying with the same credentials cannot help. */
export class OpenError extends Error {
    fatal;
    code;
    constructor(message, fatal, code) {
        super(message);
        this.fatal = fatal;
        this.code = code;
        this.name = "OpenError";
    }
}
/** Close codes after which the same credentials will be refused again (docs/realtime.md). */
export const FATAL_CLOSE_CODES = new Set([4401, 4403, 4429]);
