package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigTest {

    @Test
    void defaults() throws Exception {
        Config c = Config.fromEnv(Map.of());
        assertEquals(new Config("0.0.0.0", 8083, "echo-java", 0, false), c);
    }

    @Test
    void emptyValuesMeanDefaults() throws Exception {
        Config c = Config.fromEnv(Map.of("PORT", "", "HOST", "", "SERVICE_NAME", "", "ECHO_DELAY_MS", ""));
        assertEquals(new Config("0.0.0.0", 8083, "echo-java", 0, false), c);
    }

    @Test
    void readsEveryVariable() throws Exception {
        Config c = Config.fromEnv(Map.of(
                "PORT", "0", "HOST", "127.0.0.1", "SERVICE_NAME", "echo-java-2", "ECHO_DELAY_MS", "600000",
                "ECHO_CHAOS", "1"));
        assertEquals(new Config("127.0.0.1", 0, "echo-java-2", 600_000, true), c);
    }

    @ParameterizedTest
    @CsvSource({"1,true", "0,false", "true,false", "yes,false", "11,false", "' 1',false"})
    void chaosOnlyForExactlyOne(String value, boolean expected) throws Exception {
        assertEquals(expected, Config.fromEnv(Map.of("ECHO_CHAOS", value)).chaos());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "PORT|abc", "PORT|-1", "PORT|65536", "PORT|8083.0", "PORT|' 8083'", "PORT|99999999999",
        "ECHO_DELAY_MS|-1", "ECHO_DELAY_MS|600001", "ECHO_DELAY_MS|1.5", "ECHO_DELAY_MS|ten",
        "HOST|no such host.invalid", "HOST|nonexistent.invalid",
        "SERVICE_NAME|'bad\nname'",
    })
    void badValuesAreErrorsNamingTheVariable(String key, String value) {
        Config.ConfigException e = assertThrows(Config.ConfigException.class,
                () -> Config.fromEnv(Map.of(key, value)));
        assertTrue(e.getMessage().contains(key), e.getMessage());
    }

    @Test
    void ipv6Wildcard() throws Exception {
        assertFalse(Config.fromEnv(Map.of("HOST", "::")).host().isEmpty());
    }
}
