package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class JsonTest {

    @ParameterizedTest
    @ValueSource(strings = {
        "{}", "[]", "\"\"", "0", "-0", "-0.0e+0", "1E400", "true", "false", "null",
        "{\"a\":{\"b\":[1,{\"c\":null}]}}",
        " \t\r\n[1, 2 ,3]\r\n\t ",
        "123456789012345678901234567890123456789012345678901234567890",
        "\"\\ud83d\\ude00 \\u00e9 \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"caf\u00e9 \u2713 \ud83d\ude00\"",
        "{\"dup\":1,\"dup\":2}",
    })
    void acceptsEveryKindOfJsonValue(String body) {
        assertDoesNotThrow(() -> Json.validate(body.getBytes(StandardCharsets.UTF_8)));
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "", " ", "\n\t", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "NaN", "Infinity", "-Infinity",
        "01", "1.", ".5", "+1", "0x10", "tru", "nul", "\"open", "\"bad \\x escape\"", "\"\\u12\"",
        "\"tab\tinside\"", "{} {}", "1 2", "[1] x", "// c\n1", "/* c */ 1", "\f1", "[1]]", "\"a\" \"b\"",
    })
    void rejectsInvalidJson(String body) {
        Json.InvalidJsonException e = assertThrows(Json.InvalidJsonException.class,
                () -> Json.validate(body.getBytes(StandardCharsets.UTF_8)));
        assertFalse(e.getMessage().isBlank());
        assertFalse(e.getMessage().contains("Source:"), e.getMessage());
    }

    @Test
    void emptyBodyIsNamedAsSuch() {
        Json.InvalidJsonException e = assertThrows(Json.InvalidJsonException.class, () -> Json.validate(new byte[0]));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
    }

    @Test
    void rejectsInvalidUtf8AndOtherEncodings() {
        byte[][] bodies = {
            {'"', (byte) 0xff, '"'},                                  // not UTF-8 at all
            {'"', (byte) 0xc3, '"'},                                  // truncated sequence
            {'"', (byte) 0xed, (byte) 0xa0, (byte) 0x80, '"'},        // encoded surrogate
            {(byte) 0xef, (byte) 0xbb, (byte) 0xbf, '{', '}'},        // UTF-8 byte-order mark
            "{}".getBytes(StandardCharsets.UTF_16BE),                 // UTF-16
        };
        for (byte[] body : bodies) {
            assertThrows(Json.InvalidJsonException.class, () -> Json.validate(body));
        }
    }

    @Test
    void nestingIsBounded() {
        int ok = Json.MAX_NESTING_DEPTH;
        String deep = "[".repeat(ok) + "]".repeat(ok);
        assertDoesNotThrow(() -> Json.validate(deep.getBytes(StandardCharsets.US_ASCII)));
        String tooDeep = "[".repeat(ok + 1) + "]".repeat(ok + 1);
        assertThrows(Json.InvalidJsonException.class, () -> Json.validate(tooDeep.getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    void longNumbersAndNamesAreNotLimited() {
        String number = "9".repeat(200_000);
        assertDoesNotThrow(() -> Json.validate(number.getBytes(StandardCharsets.US_ASCII)));
        String name = "{\"" + "k".repeat(200_000) + "\":1}";
        assertDoesNotThrow(() -> Json.validate(name.getBytes(StandardCharsets.US_ASCII)));
    }
}
