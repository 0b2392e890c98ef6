/*
 * The state inspector of flink-gitops: what a job would restore, found before it runs.
 *
 * The agent builds this file with javac against the Flink jars (agent/flink/compatibility.py)
 * and runs it in one JVM on the agent's machine; nothing is submitted anywhere.
 *
 * Arguments, either part or both, in this order (one result line each, prefixed
 * FLINK_GITOPS_STATE, holding JSON):
 *   --savepoint DIR
 *       reads DIR/_metadata (a local directory) and prints each operator state:
 *       {"kind":"state","id":HEX,"uid":..,"name":..,"maxParallelism":N,"hasState":BOOL}
 *   --graph JAR [--entry CLASS] [--parallelism N] [--option KEY=VALUE]... [-- ARG...]
 *       builds the job graph of the program as Flink's client does (its main runs, its
 *       execute() is intercepted) and prints each operator:
 *       {"kind":"operator","id":HEX,"uidHash":HEX|null,"uid":..,"name":..,"maxParallelism":N}
 *       (maxParallelism -1: not set, Flink takes the savepoint's)
 * A failure prints {"kind":"error","stage":"state"|"graph"|"usage","message":..} and exits 1.
 */
package org.flinkgitops.state;

import java.io.DataInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.BufferedInputStream;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.client.program.PackagedProgram;
import org.apache.flink.client.program.PackagedProgramUtils;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.OperatorIDPair;
import org.apache.flink.runtime.checkpoint.Checkpoints;
import org.apache.flink.runtime.checkpoint.OperatorState;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.checkpoint.metadata.CheckpointMetadata;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.JobVertex;

public final class StateInspector {

    static final String PREFIX = "FLINK_GITOPS_STATE ";

    private StateInspector() {}

    public static void main(String[] args) {
        String stage = "usage";
        try {
            int at = 0;
            if (args.length >= 2 && args[0].equals("--savepoint")) {
                stage = "state";
                savepoint(args[1]);
                at = 2;
            }
            if (args.length >= at + 2 && args[at].equals("--graph")) {
                stage = "graph";
                graph(args, at + 1);
            } else if (at == 0 || at < args.length) {
                stage = "usage";
                throw new IllegalArgumentException("usage: [--savepoint DIR] [--graph JAR ...]");
            }
        } catch (Throwable error) {
            Throwable root = error;
            StringBuilder message = new StringBuilder(String.valueOf(error));
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
                message.append("\nCaused by: ").append(root);
            }
            print("{\"kind\":\"error\",\"stage\":" + quote(stage) + ",\"message\":"
                    + quote(message.toString()) + "}");
            System.exit(1);
        }
        System.exit(0);
    }

    private static void graph(String[] args, int from) throws Exception {
        String jar = args[from];
        String entry = null;
        int parallelism = 1;
        Configuration configuration = new Configuration();
        List<String> programArgs = new ArrayList<>();
        for (int i = from + 1; i < args.length; i++) {
            switch (args[i]) {
                case "--entry": entry = args[++i]; break;
                case "--parallelism": parallelism = Integer.parseInt(args[++i]); break;
                case "--option": {
                    String option = args[++i];
                    int at = option.indexOf('=');
                    configuration.setString(option.substring(0, at), option.substring(at + 1));
                    break;
                }
                case "--":
                    for (int j = i + 1; j < args.length; j++) {
                        programArgs.add(args[j]);
                    }
                    i = args.length;
                    break;
                default: throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        PackagedProgram program = PackagedProgram.newBuilder()
                .setJarFile(new File(jar))
                .setEntryPointClassName(entry)
                .setConfiguration(configuration)
                .setArguments(programArgs.toArray(new String[0]))
                .build();
        JobGraph graph = PackagedProgramUtils.createJobGraph(program, configuration, parallelism,
                false);
        for (JobVertex vertex : graph.getVertices()) {
            for (OperatorIDPair pair : vertex.getOperatorIDs()) {
                String uidHash = pair.getUserDefinedOperatorID().map(Object::toString).orElse(null);
                print("{\"kind\":\"operator\",\"id\":" + quote(pair.getGeneratedOperatorID()
                        .toString()) + ",\"uidHash\":" + quote(uidHash) + ",\"uid\":"
                        + quote(pair.getUserDefinedOperatorUid()) + ",\"name\":"
                        + quote(pair.getUserDefinedOperatorName() != null
                                ? pair.getUserDefinedOperatorName() : vertex.getName())
                        + ",\"maxParallelism\":" + vertex.getMaxParallelism() + "}");
            }
        }
    }

    private static void savepoint(String directory) throws Exception {
        File metadata = new File(directory, "_metadata");
        try (InputStream in = new BufferedInputStream(new FileInputStream(metadata))) {
            CheckpointMetadata read = Checkpoints.loadCheckpointMetadata(new DataInputStream(in),
                    StateInspector.class.getClassLoader(), directory);
            for (OperatorState state : read.getOperatorStates()) {
                boolean hasState = state.getCoordinatorState() != null;
                for (OperatorSubtaskState subtask : state.getStates()) {
                    hasState |= subtask.hasState();
                }
                print("{\"kind\":\"state\",\"id\":" + quote(state.getOperatorID().toString())
                        + ",\"uid\":" + quote(state.getOperatorUid().orElse(null))
                        + ",\"name\":" + quote(state.getOperatorName().orElse(null))
                        + ",\"maxParallelism\":" + state.getMaxParallelism()
                        + ",\"hasState\":" + hasState + "}");
            }
        }
    }

    private static void print(String json) {
        System.out.println(PREFIX + json);
        System.out.flush();
    }

    static String quote(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
