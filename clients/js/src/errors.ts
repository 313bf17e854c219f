/** An RFC 9457 problem document as the server sends it. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  errors?: Array<{ loc: Array<string | number>; msg: string; type: string }>;
  [extra: string]: unknown;
}

/** A non-2xx answer: carries the status, the problem+json body and the headers. */
export class ChatAPIError extends Error {
  readonly status: number;
  readonly problem: Problem;
  readonly headers: Headers | undefined;

  constructor(status: number, problem: Problem, headers?: Headers) {
    super(`${status} ${problem.title ?? "error"}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.name = "ChatAPIError";
    this.status = status;
    this.problem = problem;
    this.headers = headers;
  }
}

/** The server could not be reached (or the connection dropped) after every retry. */
export class ChatAPIConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ChatAPIConnectionError";
  }
}
