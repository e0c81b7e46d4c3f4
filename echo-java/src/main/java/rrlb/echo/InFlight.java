package rrlb.echo;

/** Counts the exchanges the server has started and not yet closed, so shutdown can wait for them. */
final class InFlight {

    private int count;

    synchronized void enter() {
        count++;
    }

    synchronized void exit() {
        count--;
        if (count == 0) {
            notifyAll();
        }
    }

    synchronized int count() {
        return count;
    }

    /**
     * Waits until no exchange is in flight or {@code deadlineNanos} (a {@link System#nanoTime()} value) passes.
     *
     * @return whether the count reached zero
     */
    synchronized boolean awaitIdle(long deadlineNanos) throws InterruptedException {
        while (count > 0) {
            long leftMs = (deadlineNanos - System.nanoTime()) / 1_000_000;
            if (leftMs <= 0) {
                return false;
            }
            wait(leftMs);
        }
        return true;
    }
}
