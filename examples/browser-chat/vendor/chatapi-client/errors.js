/** A non-2xx answer: carries the status, the problem+json body and the headers. */
export class ChatAPIError extends Error {
    status;
    problem;
    headers;
    constructor(status, problem, headers) {
        super(`${status} ${problem.title ?? "error"}${problem.detail ? `: ${problem.detail}` : ""}`);
        this.name = "ChatAPIError";
        this.status = status;
        this.problem = problem;
        this.headers = headers;
    }
}
/** The server could not be reached (or the connection dropped) after every retry. */
export class ChatAPIConnectionError extends Error {
    constructor(message, options) {
        super(message, options);
        this.name = "ChatAPIConnectionError";
    }
}
