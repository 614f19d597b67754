// Usage: node client.js <port> <repo root> <google protobuf include dir>
// Creates an endpoint and prints one embedding as JSON, loading the schema only from protos/ (+ google protos).
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [port, root, wellKnown] = process.argv.slice(2);
const definition = protoLoader.loadSync(
  ["elser/v1/endpoint_service.proto", "elser/v1/inference_service.proto"],
  {
    keepCase: true,
    includeDirs: [path.join(root, "protos"), path.join(root, "third_party"), wellKnown],
  },
);
const v1 = grpc.loadPackageDefinition(definition).elser.v1;
const address = `127.0.0.1:${port}`;
const endpoints = new v1.EndpointService(address, grpc.credentials.createInsecure());
const inference = new v1.InferenceService(address, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 30000);

const put = {
  inference_id: "node-elser",
  task_type: "TASK_TYPE_SPARSE_EMBEDDING",
  endpoint: {
    service: "elasticsearch",
    service_settings: { model_id: ".elser_model_2", num_allocations: 1, num_threads: 1 },
  },
};
endpoints.PutEndpoint(put, { deadline: deadline() }, (err, created) => {
  if (err) throw err;
  const request = { inference_id: created.endpoint.inference_id, input: ["hello from node"], options: { return_tokens: true } };
  inference.Infer(request, { deadline: deadline() }, (err2, result) => {
    if (err2) throw err2;
    process.stdout.write(JSON.stringify(result.embeddings[0]));
    endpoints.close();
    inference.close();
  });
});
