# The SMTP ingress. Build from the repository root:
#   docker build -f infra/docker/ingress.Dockerfile -t ghcr.io/mta-project/mta-ingress:0.1.0 .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish ingress/Mta.Ingress.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /out .
# Unprivileged ports only (2525 is published as 25 by the Service); no secrets in the image:
# the storage connection and all settings come from the environment at run time.
ENV Ingress__ListenAddress=:: \
    Ingress__Port=2525 \
    Ingress__HealthPort=8080
EXPOSE 2525 8080
USER 10001:10001
ENTRYPOINT ["dotnet", "Mta.Ingress.dll"]
