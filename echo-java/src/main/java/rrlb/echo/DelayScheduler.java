package rrlb.echo;

/**
 * Runs a task after a delay without holding a thread meanwhile.
 *
 * <p>The server completes delayed echoes through this, so a delayed request never occupies a worker; tests
 * substitute a scheduler they release by hand.
 */
@FunctionalInterface
interface DelayScheduler {

    /** Runs {@code task} once, about {@code delayMs} milliseconds from now. */
    void schedule(Runnable task, long delayMs);
}
