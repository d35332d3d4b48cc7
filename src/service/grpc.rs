//! KEDA's `externalscaler.ExternalScaler` over tonic: a thin adapter that validates the
//! ref, finds the ScaledObject's controller and answers from its latest snapshot.
//!
//! The mapping (see `docs/keda-protocol` in the README): `GetMetricSpec` returns one spec
//! with target 1 (AverageValue), `GetMetrics` returns the desired replica count D in both
//! the int and the float field, so the HPA computes `ceil(D / 1) = D` on every KEDA 2.x.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::clock::Stopwatch;
use crate::core::cycle::{active_answer, metric_answer};
use crate::service::controller::{Controller, Registry, RegistryError};
use crate::service::telemetry::Telemetry;

/// Generated protocol code (client and server).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("externalscaler");
}

use pb::external_scaler_server::ExternalScaler;
use pb::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct ScalerService {
    registry: Arc<Registry>,
    telemetry: Telemetry,
    shutdown: CancellationToken,
    first_decision_wait: Duration,
}

impl ScalerService {
    /// Creates the service. `first_decision_wait` bounds how long GetMetrics/IsActive wait
    /// for the first cycle of a brand-new controller (well under KEDA's 3 s HPA deadline).
    pub fn new(
        registry: Arc<Registry>,
        telemetry: Telemetry,
        shutdown: CancellationToken,
        first_decision_wait: Duration,
    ) -> Self {
        ScalerService {
            registry,
            telemetry,
            shutdown,
            first_decision_wait,
        }
    }

    fn controller(
        &self,
        r: &ScaledObjectRef,
        metric: Option<&str>,
    ) -> Result<Arc<Controller>, Status> {
        self.registry
            .controller(&r.namespace, &r.name, &r.scaler_metadata, metric)
            .map_err(status)
    }

    fn record<T>(&self, method: &str, watch: Stopwatch, result: &Result<T, Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.telemetry
            .rpc(method, code, watch.elapsed().as_secs_f64());
    }

    async fn is_active_inner(&self, r: &ScaledObjectRef) -> Result<bool, Status> {
        let c = self.controller(r, None)?;
        let snap = c.latest_or_wait(self.first_decision_wait).await;
        active_answer(snap.as_deref()).map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn get_metrics_inner(
        &self,
        req: &GetMetricsRequest,
    ) -> Result<GetMetricsResponse, Status> {
        let r = req.scaled_object_ref.as_ref().ok_or_else(|| {
            Status::invalid_argument("GetMetricsRequest.scaledObjectRef is required")
        })?;
        // The metric is checked before a controller starts: a wrong name starts nothing.
        let c = self.controller(r, Some(&req.metric_name))?;
        let expected = &c.config.metric_name;
        let snap = c.latest_or_wait(self.first_decision_wait).await;
        let desired =
            metric_answer(snap.as_deref()).map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: expected.clone(),
                metric_value: i64::from(desired),
                metric_value_float: f64::from(desired),
            }],
        })
    }
}

/// The gRPC status of a registry refusal: bad input is the caller's to fix, a full registry
/// is a limit (RESOURCE_EXHAUSTED, naming it).
fn status(e: RegistryError) -> Status {
    match e {
        RegistryError::Metadata(_)
        | RegistryError::BadRef(_)
        | RegistryError::UnknownMetric { .. } => Status::invalid_argument(e.to_string()),
        RegistryError::TooMany(_) => Status::resource_exhausted(e.to_string()),
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let watch = Stopwatch::start();
        let result = self.is_active_inner(request.get_ref()).await;
        self.record("IsActive", watch, &result);
        result.map(|active| Response::new(IsActiveResponse { result: active }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let watch = Stopwatch::start();
        let r = request.into_inner();
        let result = self.controller(&r, None);
        self.record("StreamIsActive", watch, &result);
        let controller = result?;
        let registry = self.registry.clone();
        let shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut controller = controller;
            // Until a decision says otherwise the fleet counts as inactive, so a fleet that is
            // already active when the stream opens gets one `true` right away.
            let mut was_active = false;
            loop {
                let _guard = controller.stream_guard();
                let mut updates = controller.subscribe();
                let stopped = controller.stopped();
                loop {
                    let active = updates
                        .borrow_and_update()
                        .as_ref()
                        .map(|s| s.decision.active);
                    if let Some(active) = active {
                        if active
                            && !was_active
                            && tx
                                .send(Ok(IsActiveResponse { result: true }))
                                .await
                                .is_err()
                        {
                            return;
                        }
                        was_active = active;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tx.closed() => return,
                        () = stopped.cancelled() => break,
                        changed = updates.changed() => if changed.is_err() { break },
                    }
                }
                if shutdown.is_cancelled() {
                    return;
                }
                // The controller was replaced or dropped: follow its successor.
                match registry.controller(&r.namespace, &r.name, &r.scaler_metadata, None) {
                    Ok(next) => controller = next,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                }
            }
        });
        // Dropping the sender ends the stream with an OK status (graceful shutdown).
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let watch = Stopwatch::start();
        let result = self
            .controller(request.get_ref(), None)
            .map(|c| GetMetricSpecResponse {
                metric_specs: vec![MetricSpec {
                    metric_name: c.config.metric_name.clone(),
                    target_size: 1,
                    target_size_float: 1.0,
                }],
            });
        self.record("GetMetricSpec", watch, &result);
        result.map(Response::new)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let watch = Stopwatch::start();
        let result = self.get_metrics_inner(request.get_ref()).await;
        self.record("GetMetrics", watch, &result);
        result.map(Response::new)
    }
}
