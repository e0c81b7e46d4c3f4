package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rrlb.echo.TestServer.assertCommonHeaders;
import static rrlb.echo.TestServer.assertError;
import static rrlb.echo.TestServer.assertMethodNotAllowed;
import static rrlb.echo.TestServer.json;
import static rrlb.echo.TestServer.text;

import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The echo, size-limit, method and /health rules with chaos off (docs/echo-contract.md). */
class EchoRoutesTest {

    private static final int LIMIT = EchoServer.MAX_BODY_BYTES;
    private static final String TOO_LARGE = "body exceeds 1048576 bytes";

    private static TestServer srv;

    @BeforeAll
    static void start() throws Exception {
        srv = TestServer.start(TestServer.config(false, 0));
    }

    @AfterAll
    static void stop() {
        srv.close();
    }

    /** A JSON string value exactly {@code size} bytes long. */
    private static byte[] jsonString(int size) {
        byte[] body = new byte[size];
        Arrays.fill(body, (byte) 'a');
        body[0] = '"';
        body[size - 1] = '"';
        return body;
    }

    // ---- echo --------------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "[1,2.5,-3e10,\"x\",[],{}]",
        "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"",
        "\"raw caf\u00e9 \u2713 \ud83d\ude00\"",
        "123456789012345678901234567890123456789012345678901234567890.000000000000000000001e-999",
        "0", "-0.0", "1E+2", "true", "false", "null", "{}", "[]", "\"\"",
        " \t\r\n {\"spaced\" : [ 1 , 2 ] } \r\n\t ",
        "{\"dup\":1,\"dup\":2}",
        "{\"n\":1.0000000000000000000000000001,\"big\":18446744073709551616}",
    })
    void echoesEveryKindOfJsonValueByteForByte(String value) throws Exception {
        byte[] body = value.getBytes(StandardCharsets.UTF_8);
        HttpResponse<byte[]> r = srv.post("/echo", body);
        assertEquals(200, r.statusCode());
        assertCommonHeaders(r);
        assertArrayEquals(body, r.body());
    }

    @ParameterizedTest
    @ValueSource(strings = {"/", "/echo", "/a/b/c", "/x?y=1&z", "/health/", "/healthz", "/_chaos"})
    void anyPathIsAnEchoPath(String path) throws Exception {
        HttpResponse<byte[]> r = srv.post(path, "{\"path\":true}");
        assertEquals(200, r.statusCode());
        assertCommonHeaders(r);
        assertEquals("{\"path\":true}", text(r));
    }

    @Test
    void chunkedBodyIsEchoed() throws Exception {
        byte[] body = "[\"chunked\",1,2,3]".getBytes(StandardCharsets.UTF_8);
        HttpResponse<byte[]> r = srv.postChunked("/echo", body);
        assertEquals(200, r.statusCode());
        assertArrayEquals(body, r.body());
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "", "   ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "NaN", "01", "+1", ".5", "tru", "\"open",
        "{} {}", "1 2", "[1] x", "/* c */ 1", "\"tab\tinside\"",
    })
    void invalidJsonIs400(String value) throws Exception {
        HttpResponse<byte[]> r = srv.post("/echo", value);
        String error = assertError(r, 400);
        assertTrue(error.startsWith("invalid JSON: "), error);
    }

    @Test
    void invalidUtf8Is400() throws Exception {
        HttpResponse<byte[]> r = srv.post("/echo", new byte[] {'"', (byte) 0xff, '"'});
        assertTrue(assertError(r, 400).startsWith("invalid JSON: "));
    }

    @Test
    void emptyBodyIs400() throws Exception {
        HttpResponse<byte[]> r = srv.send("POST", "/echo", BodyPublishers.noBody());
        assertTrue(assertError(r, 400).startsWith("invalid JSON: "));
    }

    // ---- size limit --------------------------------------------------------------------------------------

    @Test
    void exactlyOneMebibyteIsAccepted() throws Exception {
        byte[] body = jsonString(LIMIT);
        HttpResponse<byte[]> r = srv.post("/big", body);
        assertEquals(200, r.statusCode());
        assertCommonHeaders(r);
        assertArrayEquals(body, r.body());
    }

    @Test
    void exactlyOneMebibyteIsAcceptedChunked() throws Exception {
        byte[] body = jsonString(LIMIT);
        HttpResponse<byte[]> r = srv.postChunked("/big", body);
        assertEquals(200, r.statusCode());
        assertArrayEquals(body, r.body());
    }

    @Test
    void oneByteOverIs413() throws Exception {
        HttpResponse<byte[]> r = srv.post("/big", jsonString(LIMIT + 1));
        assertEquals(TOO_LARGE, assertError(r, 413));
    }

    @Test
    void oneByteOverIs413Chunked() throws Exception {
        HttpResponse<byte[]> r = srv.postChunked("/big", jsonString(LIMIT + 1));
        assertEquals(TOO_LARGE, assertError(r, 413));
    }

    @Test
    void overLimitChaosPostIs413() throws Exception {
        // With chaos off /_chaos is an echo path; the limit applies there like everywhere.
        HttpResponse<byte[]> r = srv.post("/_chaos", jsonString(LIMIT + 1));
        assertEquals(TOO_LARGE, assertError(r, 413));
    }

    @Test
    void declaredLengthIsCheckedBeforeTheBodyArrives() throws Exception {
        try (RawHttp raw = new RawHttp(srv.port)) {
            raw.write("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n");
            raw.write(new byte[1024]); // far less than declared: the answer cannot depend on reading it all
            RawHttp.Response r = raw.read();
            assertEquals(413, r.status());
            assertEquals(TestServer.NAME, r.headers().get("x-echo-service"));
            assertEquals("application/json", r.headers().get("content-type"));
            assertEquals("{\"error\":\"" + TOO_LARGE + "\"}", r.text());
        }
    }

    @Test
    void chunkedBodyIsCutOffAtTheLimitWithoutWaitingForItsEnd() throws Exception {
        try (RawHttp raw = new RawHttp(srv.port)) {
            raw.write("POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            byte[] chunk = new byte[64 * 1024];
            Arrays.fill(chunk, (byte) '1');
            String size = Integer.toHexString(chunk.length) + "\r\n";
            // 17 chunks = limit + 64 KiB, and never the terminating zero-length chunk.
            for (int i = 0; i < 17; i++) {
                raw.write(size);
                raw.write(chunk);
                raw.write("\r\n");
            }
            RawHttp.Response r = raw.read();
            assertEquals(413, r.status());
            assertEquals("{\"error\":\"" + TOO_LARGE + "\"}", r.text());
        }
    }

    @Test
    void connectionIsReusedAfterA413WhoseBodyWasDrained() throws Exception {
        try (RawHttp raw = new RawHttp(srv.port)) {
            raw.request("POST", "/big", jsonString(LIMIT + 1));
            assertEquals(413, raw.read().status());
            raw.request("GET", "/health", null);
            assertEquals(200, raw.read().status());
        }
    }

    @Test
    void keepAliveServesManyRequestsOnOneConnection() throws Exception {
        try (RawHttp raw = new RawHttp(srv.port)) {
            for (int i = 0; i < 20; i++) {
                byte[] body = ("[" + i + "]").getBytes(StandardCharsets.US_ASCII);
                raw.request("POST", "/ka", body);
                RawHttp.Response r = raw.read();
                assertEquals(200, r.status());
                assertArrayEquals(body, r.body());
                assertTrue(!"close".equalsIgnoreCase(r.headers().get("connection")));
            }
        }
    }

    // ---- methods -----------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"GET", "PUT", "DELETE", "PATCH", "OPTIONS"})
    void otherMethodsOnEchoPathsAre405(String method) throws Exception {
        for (String path : new String[] {"/", "/echo", "/a/b?c=d", "/_chaos"}) {
            HttpResponse<byte[]> r = srv.send(method, path, BodyPublishers.ofString("{}"));
            assertMethodNotAllowed(r, "POST");
        }
    }

    @Test
    void headOnAnEchoPathIs405WithoutBody() throws Exception {
        HttpResponse<byte[]> r = srv.send("HEAD", "/echo", BodyPublishers.noBody());
        assertEquals(405, r.statusCode());
        assertCommonHeaders(r);
        assertEquals("POST", r.headers().firstValue("allow").orElse(null));
        assertEquals(0, r.body().length);
    }

    // ---- /health -----------------------------------------------------------------------------------------

    @Test
    void healthIsOk() throws Exception {
        for (String path : new String[] {"/health", "/health?probe=1"}) {
            HttpResponse<byte[]> r = srv.get(path);
            assertEquals(200, r.statusCode());
            assertCommonHeaders(r);
            assertEquals(Json.MAPPER.readTree("{\"status\":\"ok\",\"service\":\"echo-test\"}"), json(r));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"POST", "PUT", "DELETE", "PATCH"})
    void otherMethodsOnHealthAre405(String method) throws Exception {
        HttpResponse<byte[]> r = srv.send(method, "/health", BodyPublishers.ofString("{}"));
        assertMethodNotAllowed(r, "GET");
    }
}
