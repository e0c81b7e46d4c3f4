package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rrlb.echo.TestServer.assertCommonHeaders;
import static rrlb.echo.TestServer.assertError;
import static rrlb.echo.TestServer.assertMethodNotAllowed;
import static rrlb.echo.TestServer.json;
import static rrlb.echo.TestServer.text;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The /_chaos routes with ECHO_CHAOS=1 and their effect on echoes and /health. */
class ChaosRoutesTest {

    private TestServer srv;

    @BeforeEach
    void start() throws Exception {
        srv = TestServer.start(TestServer.config(true, 0));
    }

    @AfterEach
    void stop() {
        srv.close();
    }

    /** Asserts a 200 settings answer of exactly the three fields and returns it. */
    private static JsonNode assertSettings(HttpResponse<byte[]> r, int delayMs, double failRate, boolean healthy)
            throws Exception {
        assertEquals(200, r.statusCode(), () -> text(r));
        assertCommonHeaders(r);
        JsonNode s = json(r);
        assertEquals(Set.of("delay_ms", "fail_rate", "healthy"), fieldNames(s));
        assertTrue(s.get("delay_ms").isIntegralNumber(), text(r));
        assertTrue(s.get("fail_rate").isNumber(), text(r));
        assertEquals(delayMs, s.get("delay_ms").intValue());
        assertEquals(failRate, s.get("fail_rate").doubleValue());
        assertEquals(healthy, s.get("healthy").booleanValue());
        return s;
    }

    private static Set<String> fieldNames(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return Set.copyOf(names);
    }

    private HttpResponse<byte[]> chaos(String body) throws Exception {
        return srv.post("/_chaos", body);
    }

    @Test
    void initialSettings() throws Exception {
        assertSettings(srv.get("/_chaos"), 0, 0.0, true);
    }

    @Test
    void initialDelayIsEchoDelayMs() throws Exception {
        try (TestServer delayed = TestServer.start(TestServer.config(true, 250))) {
            assertSettings(delayed.get("/_chaos"), 250, 0.0, true);
            assertSettings(delayed.send("DELETE", "/_chaos", BodyPublishers.noBody()), 250, 0.0, true);
        }
    }

    @Test
    void postReplacesOnlyTheGivenFields() throws Exception {
        assertSettings(chaos("{\"fail_rate\":0.25}"), 0, 0.25, true);
        assertSettings(chaos("{\"healthy\":false}"), 0, 0.25, false);
        assertSettings(chaos("{\"delay_ms\":0,\"fail_rate\":0}"), 0, 0.0, false);
        assertSettings(chaos("{}"), 0, 0.0, false);
        assertSettings(chaos(" {\"delay_ms\":600000, \"fail_rate\":1, \"healthy\":true} "), 600_000, 1.0, true);
        assertSettings(srv.get("/_chaos"), 600_000, 1.0, true);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "{\"delay_ms\":0}|0|0.5",
        "{\"delay_ms\":600000}|600000|0.5",
        "{\"fail_rate\":0}|7|0",
        "{\"fail_rate\":1.0}|7|1",
        "{\"fail_rate\":0.0}|7|0",
        "{\"fail_rate\":1}|7|1",
    })
    void boundariesAreAccepted(String body, int delayMs, double failRate) throws Exception {
        assertSettings(chaos("{\"delay_ms\":7,\"fail_rate\":0.5}"), 7, 0.5, true);
        assertSettings(chaos(body), delayMs, failRate, true);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "{\"delay_ms\":-1}|delay_ms",
        "{\"delay_ms\":600001}|delay_ms",
        "{\"delay_ms\":1.5}|delay_ms",
        "{\"delay_ms\":5.0}|delay_ms",
        "{\"delay_ms\":1e3}|delay_ms",
        "{\"delay_ms\":\"5\"}|delay_ms",
        "{\"delay_ms\":null}|delay_ms",
        "{\"delay_ms\":99999999999999999999}|delay_ms",
        "{\"fail_rate\":1.01}|fail_rate",
        "{\"fail_rate\":-0.1}|fail_rate",
        "{\"fail_rate\":\"0.5\"}|fail_rate",
        "{\"fail_rate\":true}|fail_rate",
        "{\"fail_rate\":1e999}|fail_rate",
        "{\"healthy\":\"false\"}|healthy",
        "{\"healthy\":0}|healthy",
        "{\"healthy\":null}|healthy",
        "{\"bogus\":1}|bogus",
        "{\"delay_ms\":5,\"fail_rate\":0.5,\"Healthy\":true}|Healthy",
        "{\"fail_rate\":0.5,\"delay_ms\":-5}|delay_ms",
        "[]|object",
        "1|object",
        "\"delay_ms\"|object",
        "null|object",
        "{|invalid JSON",
        "''|invalid JSON",
    })
    void badSettingsAre400AndChangeNothing(String body, String named) throws Exception {
        assertSettings(chaos("{\"delay_ms\":3,\"fail_rate\":0.75,\"healthy\":false}"), 3, 0.75, false);
        String error = assertError(chaos(body), 400);
        assertTrue(error.contains(named), () -> "error should name " + named + ": " + error);
        assertSettings(srv.get("/_chaos"), 3, 0.75, false);
    }

    @Test
    void deleteResets() throws Exception {
        assertSettings(chaos("{\"delay_ms\":3,\"fail_rate\":0.75,\"healthy\":false}"), 3, 0.75, false);
        assertSettings(srv.send("DELETE", "/_chaos", BodyPublishers.noBody()), 0, 0.0, true);
        assertSettings(srv.get("/_chaos"), 0, 0.0, true);
    }

    @ParameterizedTest
    @ValueSource(strings = {"PUT", "PATCH", "OPTIONS"})
    void otherMethodsAre405(String method) throws Exception {
        assertMethodNotAllowed(srv.send(method, "/_chaos", BodyPublishers.ofString("{}")), "GET, POST, DELETE");
    }

    @Test
    void unhealthyMakesHealth503() throws Exception {
        chaos("{\"healthy\":false}");
        HttpResponse<byte[]> r = srv.get("/health");
        assertEquals(503, r.statusCode());
        assertCommonHeaders(r);
        assertEquals(Json.MAPPER.readTree("{\"status\":\"unhealthy\",\"service\":\"echo-test\"}"), json(r));
        // Echoes are unaffected by health.
        assertEquals(200, srv.post("/echo", "[1]").statusCode());

        srv.send("DELETE", "/_chaos", BodyPublishers.noBody());
        assertEquals(200, srv.get("/health").statusCode());
    }

    @Test
    void failRateOneFailsEveryEcho() throws Exception {
        chaos("{\"fail_rate\":1}");
        for (int i = 0; i < 25; i++) {
            assertEquals("chaos: injected failure", assertError(srv.post("/echo", "{\"i\":" + i + "}"), 500));
        }
        // Not applied to /health, /_chaos, or to bodies rejected before the echo.
        assertEquals(200, srv.get("/health").statusCode());
        assertSettings(srv.get("/_chaos"), 0, 1.0, true);
        assertError(srv.post("/echo", "{"), 400);
    }

    @Test
    void failRateZeroFailsNoEcho() throws Exception {
        chaos("{\"fail_rate\":1}");
        chaos("{\"fail_rate\":0}");
        for (int i = 0; i < 25; i++) {
            HttpResponse<byte[]> r = srv.post("/echo", "{\"i\":" + i + "}");
            assertEquals(200, r.statusCode());
            assertEquals("{\"i\":" + i + "}", text(r));
        }
    }

    @Test
    void overLimitChaosPostIs413() throws Exception {
        byte[] big = new byte[EchoServer.MAX_BODY_BYTES + 1];
        java.util.Arrays.fill(big, (byte) ' ');
        big[0] = '{';
        big[big.length - 1] = '}';
        assertEquals("body exceeds 1048576 bytes", assertError(srv.post("/_chaos", big), 413));
        assertSettings(srv.get("/_chaos"), 0, 0.0, true);
    }
}
