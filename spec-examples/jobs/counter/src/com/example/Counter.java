package com.example;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.PrintSink;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

import java.util.HashMap;
import java.util.Map;

/**
 * counter: an unbounded, stateful example job.
 *
 * <p>A source emits the keys {@code key-0 … key-(K-1)} round robin, forever, at a steady rate;
 * the job keeps a running count per key in keyed state and emits {@code (key, count)} after
 * every event. Because the count lives in Flink state, a job stopped with a savepoint and
 * started again from it (at any parallelism) continues counting where it stopped.
 *
 * <p>Arguments:
 * <ul>
 *   <li>{@code --rate N}: events per second for the whole job (default 50)</li>
 *   <li>{@code --keys K}: number of distinct keys (default 16)</li>
 *   <li>{@code --print}: print {@code (key,count)} to the TaskManager's stdout instead of
 *       discarding it (keep the rate low)</li>
 *   <li>{@code --count-uid U}: the uid of the counting operator (default count-per-key);
 *       another uid leaves the counts of a savepoint unmatched (see allowNonRestoredState)</li>
 *   <li>{@code --fail-after N}: every counting subtask throws after N events since it
 *       (re)started, so the job keeps restarting (for trying out unhealthy jobs)</li>
 *   <li>{@code --needs CLASS}: refuse to start unless the job's classpath has CLASS (for
 *       trying out additionalDependencies)</li>
 *   <li>{@code --exit-when FILE}: once the job runs, its {@code main} waits for FILE to exist
 *       and then calls {@code System.exit}: in application mode, where {@code main} runs in
 *       the JobManager, that ends the cluster's JobManager (for trying out a job that takes its
 *       own cluster down)</li>
 * </ul>
 *
 * <p>The arguments are parsed here rather than with Flink's {@code ParameterTool}, which moved
 * package in Flink 2.0: this source compiles and runs against Flink 1.20 and 2.x alike.
 *
 * <p>Checkpointing, the state backend and restart strategy are deliberately not set here:
 * they come from the cluster or the deployment's Flink configuration
 * (e.g. {@code execution.checkpointing.interval: 10s}).
 */
public final class Counter {

    private Counter() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> params = parseArgs(args);
        double rate = Double.parseDouble(params.getOrDefault("rate", "50"));
        int keys = Integer.parseInt(params.getOrDefault("keys", "16"));
        boolean print = params.containsKey("print");
        long failAfter = Long.parseLong(params.getOrDefault("fail-after", "0"));
        String countUid = params.getOrDefault("count-uid", "count-per-key");
        if (rate <= 0 || keys <= 0) {
            throw new IllegalArgumentException("--rate and --keys must be positive");
        }
        if (params.containsKey("needs")) {   // throws ClassNotFoundException when it is not there
            Class.forName(params.get("needs"), false, Counter.class.getClassLoader());
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();

        // The data generator counts an index up to Long.MAX_VALUE: at any sane rate that is
        // forever. Its position is part of every checkpoint and savepoint.
        GeneratorFunction<Long, String> keyOfEvent = index -> "key-" + (index % keys);
        DataGeneratorSource<String> source =
                new DataGeneratorSource<>(
                        keyOfEvent,
                        Long.MAX_VALUE,
                        RateLimiterStrategy.perSecond(rate),
                        Types.STRING);

        // Every operator has a stable uid: savepoint state is matched to operators by uid, so
        // the job can be changed and rescaled without losing its counts.
        DataStream<String> events =
                env.fromSource(source, WatermarkStrategy.noWatermarks(), "events")
                        .uid("events")
                        // One reader keeps the rate exact whatever the job's parallelism;
                        // the keyed counting below scales with it.
                        .setParallelism(1);

        DataStream<Tuple2<String, Long>> counts =
                events.keyBy(key -> key, Types.STRING)
                        .process(new CountPerKey(failAfter))
                        .uid(countUid)
                        .name("count per key");

        if (print) {
            counts.sinkTo(new PrintSink<>()).uid("sink").name("print");
        } else {
            counts.sinkTo(new DiscardingSink<>()).uid("sink").name("discard");
        }

        String exitWhen = params.get("exit-when");
        if (exitWhen != null) {
            env.executeAsync("counter");
            java.nio.file.Path marker = java.nio.file.Paths.get(exitWhen);
            while (!java.nio.file.Files.exists(marker)) {
                Thread.sleep(200);
            }
            System.exit(3);
        }
        env.execute("counter");
    }

    /**
     * {@code --name value} and {@code -name value} pairs, and {@code --flag} alone (value "");
     * a value may be a negative number. Anything else is an error, as with ParameterTool.
     */
    static Map<String, String> parseArgs(String[] args) {
        Map<String, String> params = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("-") || arg.equals("-") || arg.equals("--")) {
                throw new IllegalArgumentException(
                        "cannot parse argument '" + arg + "': options are --name [value]");
            }
            String name = arg.startsWith("--") ? arg.substring(2) : arg.substring(1);
            String value = "";
            if (i + 1 < args.length && !isOptionName(args[i + 1])) {
                value = args[++i];
            }
            params.put(name, value);
        }
        return params;
    }

    private static boolean isOptionName(String arg) {
        return arg.startsWith("-") && !arg.matches("-\\d.*");
    }

    /**
     * Counts the events of each key in a {@code ValueState<Long>}. With {@code failAfter > 0}
     * it throws after that many events since it (re)started: a job stuck in restarts.
     */
    static final class CountPerKey
            extends KeyedProcessFunction<String, String, Tuple2<String, Long>> {

        private final long failAfter;
        private transient ValueState<Long> count;
        private transient long seen;

        CountPerKey(long failAfter) {
            this.failAfter = failAfter;
        }

        @Override
        public void open(OpenContext openContext) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
            seen = 0;
        }

        @Override
        public void processElement(
                String key, Context context, Collector<Tuple2<String, Long>> out)
                throws Exception {
            if (failAfter > 0 && ++seen > failAfter) {
                throw new IllegalStateException(
                        "counter: failing on purpose after " + failAfter + " events (--fail-after)");
            }
            Long previous = count.value();
            long next = (previous == null ? 0L : previous) + 1;
            count.update(next);
            out.collect(Tuple2.of(key, next));
        }
    }
}
