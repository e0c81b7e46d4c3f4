/**
 * Short name for the container health probe: {@code java -cp /app/echo-java.jar HealthCheck}
 * (the form compose.yaml uses). Same as {@code java -cp /app/echo-java.jar rrlb.echo.HealthCheck}.
 */
public final class HealthCheck {

    private HealthCheck() {}

    public static void main(String[] args) {
        rrlb.echo.HealthCheck.main(args);
    }
}
