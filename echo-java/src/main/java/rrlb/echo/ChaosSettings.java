package rrlb.echo;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/**
 * The run-time behaviour that {@code /_chaos} shows and changes: added latency, injected failure rate, health.
 *
 * <p>Immutable; the server keeps the current value in an {@code AtomicReference} and swaps whole values, so one
 * echo always sees one consistent set.
 */
record ChaosSettings(int delayMs, double failRate, boolean healthy) {

    ChaosSettings {
        if (delayMs < 0 || delayMs > Config.MAX_DELAY_MS) {
            throw new IllegalArgumentException("delayMs out of range: " + delayMs);
        }
        if (!(failRate >= 0.0 && failRate <= 1.0)) {
            throw new IllegalArgumentException("failRate out of range: " + failRate);
        }
    }

    /** Settings at startup and after {@code DELETE /_chaos}. */
    static ChaosSettings initial(Config config) {
        return new ChaosSettings(config.delayMs(), 0.0, true);
    }

    /** A POST body that cannot be applied; the message names the field. */
    static final class InvalidChaosException extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidChaosException(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * Validates a whole {@code POST /_chaos} body before anything changes: every field optional, none unknown.
     *
     * @return a function from the current settings to the new ones
     */
    static Patch parsePatch(JsonNode body) throws InvalidChaosException {
        if (!body.isObject()) {
            throw new InvalidChaosException("chaos settings must be a JSON object");
        }
        Integer delayMs = null;
        Double failRate = null;
        Boolean healthy = null;
        for (Map.Entry<String, JsonNode> field : body.properties()) {
            JsonNode v = field.getValue();
            switch (field.getKey()) {
                case "delay_ms":
                    if (!v.isIntegralNumber() || !v.canConvertToInt()
                            || v.intValue() < 0 || v.intValue() > Config.MAX_DELAY_MS) {
                        throw new InvalidChaosException(
                                "delay_ms must be an integer between 0 and " + Config.MAX_DELAY_MS);
                    }
                    delayMs = v.intValue();
                    break;
                case "fail_rate":
                    if (!v.isNumber() || !(v.doubleValue() >= 0.0 && v.doubleValue() <= 1.0)) {
                        throw new InvalidChaosException("fail_rate must be a number between 0.0 and 1.0");
                    }
                    failRate = v.doubleValue();
                    break;
                case "healthy":
                    if (!v.isBoolean()) {
                        throw new InvalidChaosException("healthy must be a boolean");
                    }
                    healthy = v.booleanValue();
                    break;
                default:
                    throw new InvalidChaosException(
                            "unknown field \"" + field.getKey() + "\" (known: delay_ms, fail_rate, healthy)");
            }
        }
        return new Patch(delayMs, failRate, healthy);
    }

    /** The fields a POST named; {@code null} keeps the current value. */
    record Patch(Integer delayMs, Double failRate, Boolean healthy) {
        ChaosSettings applyTo(ChaosSettings current) {
            return new ChaosSettings(
                    delayMs != null ? delayMs : current.delayMs(),
                    failRate != null ? failRate : current.failRate(),
                    healthy != null ? healthy : current.healthy());
        }
    }

    /** {@code {"delay_ms":<int>,"fail_rate":<number>,"healthy":<bool>}} */
    byte[] toJson() {
        return Json.bytes(Json.object()
                .put("delay_ms", delayMs)
                .put("fail_rate", failRate)
                .put("healthy", healthy));
    }
}
