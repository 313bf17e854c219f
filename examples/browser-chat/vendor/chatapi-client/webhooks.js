/** The webhook could not be verified with any of the secrets. */
export class WebhookVerificationError extends Error {
    constructor(message) {
        super(message);
        this.name = "WebhookVerificationError";
    }
}
function pick(headers, name) {
    if (typeof headers.get === "function")
        return headers.get(name) ?? "";
    const record = headers;
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    const value = key === undefined ? undefined : record[key];
    return Array.isArray(value) ? value.join(", ") : (value ?? "");
}
/**
 * Verifies a Standard Webhooks delivery (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) against one secret or several (during a rotation) with the
 * `standardwebhooks` library, and answers the parsed payload; throws
 * `WebhookVerificationError` when no secret matches or the timestamp is over 5 minutes off.
 * Pass the body exactly as received (string or bytes), never re-serialised JSON.
 */
export async function verifyWebhook(secret, body, headers) {
    const { Webhook } = await import("standardwebhooks");
    const wanted = {
        "webhook-id": pick(headers, "webhook-id"),
        "webhook-timestamp": pick(headers, "webhook-timestamp"),
        "webhook-signature": pick(headers, "webhook-signature"),
    };
    const secrets = Array.isArray(secret) ? secret : [secret];
    let reason = "no secret given";
    for (const candidate of secrets) {
        try {
            return new Webhook(candidate).verify(body, wanted);
        }
        catch (error) {
            reason = error instanceof Error ? error.message : String(error);
        }
    }
    throw new WebhookVerificationError(reason);
}
