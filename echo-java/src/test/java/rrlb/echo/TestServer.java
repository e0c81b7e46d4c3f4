package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpRequest.BodyPublisher;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandlers;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;

/** An {@link EchoServer} on 127.0.0.1 with an ephemeral port, plus an HTTP/1.1 client aimed at it. */
final class TestServer implements AutoCloseable {

    static final String NAME = "echo-test";

    final EchoServer server;
    final HttpClient client;
    final int port;

    private TestServer(EchoServer server) {
        this.server = server;
        this.port = server.port();
        this.client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10))
                .build();
    }

    static Config config(boolean chaos, int delayMs) {
        return new Config("127.0.0.1", 0, NAME, delayMs, chaos);
    }

    static TestServer start(Config config) throws IOException {
        return new TestServer(EchoServer.start(config));
    }

    static TestServer start(Config config, DelayScheduler scheduler, ExecutorService workers) throws IOException {
        return new TestServer(EchoServer.start(config, scheduler, workers));
    }

    URI uri(String path) {
        return URI.create("http://127.0.0.1:" + port + path);
    }

    HttpRequest request(String method, String path, BodyPublisher body) {
        return HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(60)).method(method, body).build();
    }

    HttpResponse<byte[]> send(String method, String path, BodyPublisher body) throws Exception {
        return client.send(request(method, path, body), BodyHandlers.ofByteArray());
    }

    CompletableFuture<HttpResponse<byte[]>> sendAsync(String method, String path, BodyPublisher body) {
        return client.sendAsync(request(method, path, body), BodyHandlers.ofByteArray());
    }

    HttpResponse<byte[]> get(String path) throws Exception {
        return send("GET", path, BodyPublishers.noBody());
    }

    HttpResponse<byte[]> post(String path, byte[] body) throws Exception {
        return send("POST", path, BodyPublishers.ofByteArray(body));
    }

    HttpResponse<byte[]> post(String path, String body) throws Exception {
        return post(path, body.getBytes(StandardCharsets.UTF_8));
    }

    /** POST with an unknown length, which the client sends with chunked transfer coding. */
    HttpResponse<byte[]> postChunked(String path, byte[] body) throws Exception {
        return send("POST", path, BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body)));
    }

    @Override
    public void close() {
        server.shutdown(Duration.ofSeconds(5));
    }

    // ---- assertions shared by the test classes ------------------------------------------------------------

    /** Every answer, errors included, names the service and is JSON. */
    static void assertCommonHeaders(HttpResponse<?> response) {
        assertEquals(NAME, response.headers().firstValue("x-echo-service").orElse(null),
                "x-echo-service on " + response.statusCode());
        assertEquals("application/json", response.headers().firstValue("content-type").orElse(null),
                "content-type on " + response.statusCode());
    }

    static JsonNode json(HttpResponse<byte[]> response) throws IOException {
        return Json.MAPPER.readTree(response.body());
    }

    static String text(HttpResponse<byte[]> response) {
        return new String(response.body(), StandardCharsets.UTF_8);
    }

    /** Status, common headers and an {@code {"error": ...}} body; returns the error message. */
    static String assertError(HttpResponse<byte[]> response, int status) throws IOException {
        assertEquals(status, response.statusCode(), () -> "body: " + text(response));
        assertCommonHeaders(response);
        JsonNode body = json(response);
        assertTrue(body.isObject() && body.size() == 1 && body.path("error").isTextual(),
                () -> "error body: " + text(response));
        return body.get("error").asText();
    }

    static void assertMethodNotAllowed(HttpResponse<byte[]> response, String allow) throws IOException {
        assertEquals("method not allowed", assertError(response, 405));
        assertEquals(allow, response.headers().firstValue("allow").orElse(null));
    }
}
