package rrlb.echo;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * Strict JSON (RFC 8259) validation and the few JSON documents the service writes.
 *
 * <p>Bodies are decoded as strict UTF-8 first (Jackson would otherwise guess UTF-16/32 from zero bytes and skip
 * a byte-order mark), then streamed through Jackson's parser without building a tree, so numbers of any length
 * are accepted and nothing is converted: the echo answers with the original bytes.
 */
final class Json {

    /** Deepest nesting accepted (Go's encoding/json uses the same bound); the parser itself is not recursive. */
    static final int MAX_NESTING_DEPTH = 10_000;

    static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxNestingDepth(MAX_NESTING_DEPTH)
                    .maxNumberLength(Integer.MAX_VALUE)
                    .maxStringLength(Integer.MAX_VALUE)
                    .maxNameLength(Integer.MAX_VALUE)
                    .build())
            .build();

    static final ObjectMapper MAPPER = new ObjectMapper(FACTORY);

    private static final Pattern SOURCE_LOCATION = Pattern.compile("\\[Source: [^;]*; (line: \\d+, column: \\d+)\\]");

    private Json() {}

    /** A body that is not one valid JSON value; {@link #getMessage()} is the detail for the 400 answer. */
    static final class InvalidJsonException extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidJsonException(String detail) {
            super(detail, null, false, false);
        }
    }

    /**
     * Checks that {@code body} is exactly one JSON value, optionally surrounded by JSON whitespace.
     *
     * @return the decoded text (for callers that go on to read the value); array-backed, flipped
     */
    static CharBuffer validate(byte[] body) throws InvalidJsonException {
        CharBuffer text = decodeUtf8(body);
        if (text.hasRemaining() && text.get(0) == '\uFEFF') {
            throw new InvalidJsonException("byte order mark is not allowed");
        }
        try (JsonParser parser = FACTORY.createParser(text.array(), 0, text.limit())) {
            if (parser.nextToken() == null) {
                throw new InvalidJsonException(body.length == 0 ? "empty body" : "no JSON value in body");
            }
            parser.skipChildren();
            if (parser.nextToken() != null) {
                throw new InvalidJsonException("unexpected data after the JSON value" + where(parser.currentTokenLocation()));
            }
            return text;
        } catch (JsonProcessingException e) {
            throw new InvalidJsonException(clean(e.getOriginalMessage()) + where(e.getLocation()));
        } catch (IOException e) {
            // A parser over an in-memory array has no other I/O to fail.
            throw new UncheckedIOException(e);
        }
    }

    /** Parses text that {@link #validate} accepted. */
    static JsonNode readTree(CharBuffer validated) {
        try (JsonParser parser = FACTORY.createParser(validated.array(), 0, validated.limit())) {
            return MAPPER.readTree(parser);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** {@code {"error":"<message>"}} as bytes. */
    static byte[] error(String message) {
        return bytes(MAPPER.createObjectNode().put("error", message));
    }

    static ObjectNode object() {
        return MAPPER.createObjectNode();
    }

    static byte[] bytes(JsonNode node) {
        try {
            return MAPPER.writeValueAsBytes(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise a tree node", e);
        }
    }

    private static CharBuffer decodeUtf8(byte[] body) throws InvalidJsonException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(body);
        // UTF-8 never yields more UTF-16 units than bytes.
        CharBuffer out = CharBuffer.allocate(body.length);
        CoderResult result = decoder.decode(in, out, true);
        if (result.isUnderflow()) {
            result = decoder.flush(out);
        }
        if (result.isError()) {
            throw new InvalidJsonException("invalid UTF-8 at byte offset " + in.position());
        }
        return out.flip();
    }

    /** Some Jackson messages embed a second location ("start marker at [Source: ...; line: 1, column: 1]"). */
    private static String clean(String message) {
        return SOURCE_LOCATION.matcher(message).replaceAll("$1").replace('\n', ' ');
    }

    private static String where(JsonLocation location) {
        if (location == null || location.getLineNr() < 0) {
            return "";
        }
        return " at line " + location.getLineNr() + ", column " + location.getColumnNr();
    }
}
