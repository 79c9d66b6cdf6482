using Mta.Ingress;

var app = IngressHost.Build(args);
await app.RunAsync();
